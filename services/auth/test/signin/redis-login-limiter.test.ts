import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { privateRedis } from '../helpers.js'
import { RedisLoginLimiter } from '../../src/signin/redis-login-limiter.js'
import { createRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { loginLimiterContract, POLICY } from './login-limiter-contract.js'

const { redis, admin } = await privateRedis(t)

function fixture(keyPrefix = `t${randomBytes(4).toString('hex')}:`) {
  const clock = new ManualClock()
  return { clock, keyPrefix, limiter: new RedisLoginLimiter({ redis, policy: POLICY, clock: clock.now, keyPrefix }) }
}

loginLimiterContract(t, async () => fixture())

t.test('redis: keys name neither the username nor the address, and all expire', async (t) => {
  const f = fixture()
  const c = await f.limiter.attempt('Alice.Secret-Name', '192.0.2.44')
  if (c.status === 'admitted') await f.limiter.succeeded(c.ticket)
  for (let i = 0; i < POLICY.maxPerUser + 1; i++) {
    const d = await f.limiter.attempt('Alice.Secret-Name', '198.51.100.44')
    if (d.status === 'admitted') await f.limiter.failed(d.ticket)
  }
  const keys = (await admin.call('KEYS', `${f.keyPrefix}*`)) as string[]
  t.ok(keys.length >= 3, `keys: ${keys.join(' ')}`)
  for (const k of keys) {
    t.notMatch(k, /alice|secret|192|198/i, `${k} is opaque`)
    t.ok(Number(await admin.call('PTTL', k)) > 0, `${k} expires`)
  }
  const slots = new Set(await Promise.all(keys.filter((k) => k.includes('{u:')).map(async (k) => await admin.call('CLUSTER', 'KEYSLOT', k).catch(() => k.split('{')[1]!.split('}')[0]))))
  t.equal(slots.size, 1, "a user bucket's keys share one hash tag")
})

t.test('redis: a single failure leaves keys that expire with the window', async (t) => {
  const f = fixture()
  const c = await f.limiter.attempt('solo', '192.0.2.45')
  if (c.status === 'admitted') await f.limiter.failed(c.ticket)
  const keys = (await admin.call('KEYS', `${f.keyPrefix}*`)) as string[]
  t.equal(keys.length, 2, 'the username and the address buckets')
  for (const k of keys) {
    const pttl = Number(await admin.call('PTTL', k))
    t.ok(pttl > 0 && pttl <= POLICY.windowMs, `${k} expires within the window (${pttl} ms)`)
  }
})

t.test('redis: a bucket is one key per kind, however many attempts', async (t) => {
  const f = fixture()
  for (let i = 0; i < 200; i++) {
    const c = await f.limiter.attempt(`u${i % 3}`, '203.0.113.44')
    if (c.status === 'admitted') await f.limiter.failed(c.ticket)
  }
  const keys = (await admin.call('KEYS', `${f.keyPrefix}*`)) as string[]
  t.ok(keys.length <= 3 * 3 + 3, `${keys.length} keys`)
  const attempts = keys.filter((k) => k.includes('{a:') && k.endsWith(':attempts'))
  for (const k of attempts) t.ok(Number(await admin.call('ZCARD', k)) <= POLICY.maxPerAddress, 'refused attempts are not stored')
})

t.test('redis down: StoreUnavailable, never a hang', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, connectTimeoutMs: 300 })
  t.teardown(() => dead.disconnect())
  const limiter = new RedisLoginLimiter({ redis: dead, policy: POLICY })
  const started = Date.now()
  await t.rejects(limiter.attempt('alice', '192.0.2.1'), StoreUnavailable)
  await t.rejects(limiter.release({ user: 'A'.repeat(22), address: 'B'.repeat(22), id: 'x' }), StoreUnavailable)
  t.ok(Date.now() - started < 2000, 'fails fast')
})
