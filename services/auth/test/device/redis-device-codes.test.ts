import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { privateRedis } from '../helpers.js'
import { RedisDeviceCodeStore } from '../../src/device/redis-device-codes.js'
import { deviceCodeHash } from '../../src/device/device-codes.js'
import { createRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { CLOCK_START, INTERVAL_S, TTL_MS, deviceCodeStoreContract } from './device-code-store-contract.js'

const { redis, admin } = await privateRedis(t)

function store(keyPrefix = `t${randomBytes(4).toString('hex')}:`) {
  const clock = new ManualClock(CLOCK_START)
  return { clock, keyPrefix, store: new RedisDeviceCodeStore({ redis, ttlMs: TTL_MS, intervalSeconds: INTERVAL_S, clock: clock.now, keyPrefix }) }
}

deviceCodeStoreContract(t, async () => store())

t.test('redis: the device code is stored only as its SHA-256; every key expires; the pointer lives only as long as the code', async (t) => {
  const s = store()
  const { deviceCode, request } = await s.store.start({ clientId: 'tv', scope: 'openid' })
  const keys = ((await admin.call('KEYS', `${s.keyPrefix}*`)) as string[]).sort()
  t.same(keys, [`${s.keyPrefix}device-user:${request.userCode}`, `${s.keyPrefix}device:{${deviceCodeHash(deviceCode)}}`].sort())
  const dump = JSON.stringify(await Promise.all(keys.map(async (k) => [k, await admin.call('DUMP', k)])))
  t.notOk(dump.includes(deviceCode), 'the device code itself is nowhere')
  const pointer = Number(await admin.call('PTTL', `${s.keyPrefix}device-user:${request.userCode}`))
  const record = Number(await admin.call('PTTL', `${s.keyPrefix}device:{${deviceCodeHash(deviceCode)}}`))
  t.ok(pointer > 0 && pointer <= TTL_MS, `the user code lives DEVICE_CODE_TTL (${pointer})`)
  t.ok(record > TTL_MS && record <= 2 * TTL_MS, `the request is kept as long again, to answer expired_token (${record})`)
})

t.test('redis: a user code that is taken is not handed out again while it lives', async (t) => {
  const s = store()
  const { request } = await s.store.start({ clientId: 'tv', scope: 'openid' })
  const taken = await admin.call('SET', `${s.keyPrefix}device-user:${request.userCode}`, 'x', 'NX')
  t.equal(taken, null, 'SET NX refuses the live pointer, which is how start() claims one')
})

t.test('redis: the store down is StoreUnavailable, never a protocol answer', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, connectTimeoutMs: 300 })
  t.teardown(() => dead.disconnect())
  const s = new RedisDeviceCodeStore({ redis: dead, ttlMs: TTL_MS, intervalSeconds: INTERVAL_S })
  await t.rejects(s.start({ clientId: 'tv', scope: '' }), StoreUnavailable)
  await t.rejects(s.poll('A'.repeat(43), 'tv'), StoreUnavailable)
  await t.rejects(s.findByUserCode('BCDFGHJK'), StoreUnavailable)
})
