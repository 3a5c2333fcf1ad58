import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { privateRedis } from '../helpers.js'
import { codeHash } from '../../src/authorize/codes.js'
import { RedisAuthorizationCodeStore } from '../../src/authorize/redis-codes.js'
import { RedisReplayStore } from '../../src/directory/redis-replay.js'
import { RedisLoginSessionStore } from '../../src/signin/redis-sessions.js'
import { createRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { CLOCK_START, SESSION_TTL_MS, storeContracts } from './store-contracts.js'

const { redis, admin } = await privateRedis(t)

function stores(keyPrefix = `t${randomBytes(4).toString('hex')}:`) {
  const clock = new ManualClock(CLOCK_START)
  return {
    clock,
    keyPrefix,
    sessions: new RedisLoginSessionStore({ redis, ttlMs: SESSION_TTL_MS, clock: clock.now, keyPrefix }),
    codes: new RedisAuthorizationCodeStore({ redis, clock: clock.now, keyPrefix }),
    replay: new RedisReplayStore({ redis, clock: clock.now, keyPrefix }),
  }
}

storeContracts(t, async () => stores())

t.test('redis: nothing secret is stored, and every key carries a TTL', async (t) => {
  const s = stores()
  const { session, token } = await s.sessions.start({ userId: 'u_1', authTime: 1 })
  const code = await s.codes.issue({ clientId: 'web', redirectUri: 'https://a/cb', codeChallenge: 'x'.repeat(43), scope: 'openid', userId: 'u_1', sessionId: session.id, authTime: 1 })
  await s.replay.claim('svc', 'jti', s.clock.ms + 30_000)
  const keys = (await admin.call('KEYS', `${s.keyPrefix}*`)) as string[]
  t.equal(keys.length, 4)
  t.ok(keys.includes(`${s.keyPrefix}user-sess:u_1`), "the user's session index")
  t.ok(Number(await admin.call('PTTL', `${s.keyPrefix}user-sess:u_1`)) <= SESSION_TTL_MS, 'the index lives as long as the newest session')
  t.ok(keys.includes(`${s.keyPrefix}login-sess:${session.id}`))
  t.ok(keys.includes(`${s.keyPrefix}code:${codeHash(code)}`), 'the code is stored by its hash')
  const dump = JSON.stringify(await Promise.all(keys.map(async (k) => [k, await admin.call('DUMP', k)])))
  t.notOk(dump.includes(code), 'the code itself is nowhere')
  t.notOk(dump.includes(token.split('.')[1]!), 'the session secret is nowhere')
  for (const k of keys) {
    const pttl = Number(await admin.call('PTTL', k))
    t.ok(pttl > 0, `${k} expires`)
  }
  t.ok(Number(await admin.call('PTTL', `${s.keyPrefix}jti:${keys.find((k) => k.includes(':jti:'))!.split(':jti:')[1]}`)) <= 30_000, 'a jti lives as long as its assertion')
  t.ok(Number(await admin.call('PTTL', `${s.keyPrefix}code:${codeHash(code)}`)) <= 60_000, 'a code lives 60 s')
})

t.test('redis: a spent code keeps its marker longer than the code lived', async (t) => {
  const s = stores()
  const code = await s.codes.issue({ clientId: 'web', redirectUri: 'https://a/cb', codeChallenge: 'x'.repeat(43), scope: 'openid', userId: 'u_1', sessionId: 'AAAAAAAAAAAAAAAAAAAAAA', authTime: 1 })
  await s.codes.consume(code)
  const pttl = Number(await admin.call('PTTL', `${s.keyPrefix}code:${codeHash(code)}`))
  t.ok(pttl > 60_000 && pttl <= 600_000, `spent marker lives ~10 min (${pttl} ms)`)
})

t.test('redis down: every store reports StoreUnavailable (503), never hangs', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, connectTimeoutMs: 300 })
  t.teardown(() => dead.disconnect())
  const clock = new ManualClock(CLOCK_START)
  const sessions = new RedisLoginSessionStore({ redis: dead, ttlMs: 1000, clock: clock.now })
  const codes = new RedisAuthorizationCodeStore({ redis: dead, clock: clock.now })
  const replay = new RedisReplayStore({ redis: dead, clock: clock.now })
  await t.rejects(sessions.start({ userId: 'u', authTime: 1 }), StoreUnavailable)
  await t.rejects(sessions.resolve(`${'A'.repeat(22)}.${'B'.repeat(43)}`), StoreUnavailable)
  await t.rejects(codes.issue({ clientId: 'c', redirectUri: 'r', codeChallenge: 'x'.repeat(43), scope: '', userId: 'u', sessionId: 's', authTime: 1 }), StoreUnavailable)
  await t.rejects(codes.consume('A'.repeat(43)), StoreUnavailable)
  await t.rejects(replay.claim('c', 'j', clock.ms + 1000), StoreUnavailable)
})
