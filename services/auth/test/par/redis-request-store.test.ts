import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { privateRedis } from '../helpers.js'
import { referenceHash } from '../../src/par/request-store.js'
import { RedisPushedRequestStore } from '../../src/par/redis-request-store.js'
import { createRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { CLOCK_START, LIFETIME_MS, requestStoreContract } from './request-store-contract.js'

const { redis, admin } = await privateRedis(t)

function store(keyPrefix = `t${randomBytes(4).toString('hex')}:`) {
  const clock = new ManualClock(CLOCK_START)
  return { clock, keyPrefix, store: new RedisPushedRequestStore({ redis, lifetimeMs: LIFETIME_MS, clock: clock.now, keyPrefix }) }
}

requestStoreContract(t, async () => store())

t.test('redis: only the hash of the reference names the key, and the key expires with PAR_TTL', async (t) => {
  const s = store()
  const ref = await s.store.push({ clientId: 'web', params: { client_id: 'web', state: 'x' } })
  const keys = (await admin.call('KEYS', `${s.keyPrefix}*`)) as string[]
  t.same(keys, [`${s.keyPrefix}par:${referenceHash(ref)}`])
  const dump = JSON.stringify(await admin.call('GET', keys[0]!))
  t.notOk(dump.includes(ref), 'the reference itself is nowhere')
  const pttl = Number(await admin.call('PTTL', keys[0]!))
  t.ok(pttl > 0 && pttl <= LIFETIME_MS, `expires within PAR_TTL (${pttl} ms)`)
  await s.store.take(ref, 'web')
  t.same(await admin.call('KEYS', `${s.keyPrefix}*`), [], 'taking it removes the key')
})

t.test('redis: a record that is not what push() wrote is not found, not a crash', async (t) => {
  const s = store()
  const ref = randomBytes(32).toString('base64url')
  await admin.call('SET', `${s.keyPrefix}par:${referenceHash(ref)}`, '{"clientId":"web","params":{"a":1},"expiresAt":1}')
  t.same(await s.store.take(ref, 'web'), { status: 'not_found' })
})

t.test('redis down: StoreUnavailable (503), never hangs', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, connectTimeoutMs: 300 })
  t.teardown(() => dead.disconnect())
  const s = new RedisPushedRequestStore({ redis: dead, lifetimeMs: LIFETIME_MS })
  await t.rejects(s.push({ clientId: 'web', params: {} }), StoreUnavailable)
  await t.rejects(s.take(randomBytes(32).toString('base64url'), 'web'), StoreUnavailable)
})
