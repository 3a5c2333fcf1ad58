import { randomBytes } from 'node:crypto'
import t from 'tap'
import { privateRedis } from '../helpers.js'
import { RedisFactorStore, credentialDigest } from '../../src/mfa/redis-factors.js'
import { createRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { factorStoreContract, passkey, recovery, totp, T0 } from './factor-store-contract.js'

const { redis, admin } = await privateRedis(t)

function store(keyPrefix = `t${randomBytes(4).toString('hex')}:`) {
  return { keyPrefix, store: new RedisFactorStore({ redis, keyPrefix }) }
}

factorStoreContract(t, async () => ({ store: store().store, addUser: async () => undefined }))

t.test('redis: one durable hash per user under its hash tag; a passkey pointer under the SHA-256 of its credential id', async (t) => {
  const s = store()
  const k = passkey('u_alice')
  await s.store.add(totp('u_alice'))
  await s.store.add(k)
  await s.store.add(recovery('u_alice', ['c1', 'c2']))
  const keys = ((await admin.call('KEYS', `${s.keyPrefix}*`)) as string[]).sort()
  t.same(keys, [`${s.keyPrefix}factors:{u_alice}`, `${s.keyPrefix}passkey:${credentialDigest(k.credentialId)}`].sort())
  for (const key of keys) t.equal(Number(await admin.call('PTTL', key)), -1, `${key} never expires`)
  t.equal(await admin.call('GET', `${s.keyPrefix}passkey:${credentialDigest(k.credentialId)}`), `u_alice ${k.id}`)
  t.equal(await admin.call('HLEN', `${s.keyPrefix}factors:{u_alice}`), 3)
  t.notOk(JSON.stringify(await admin.call('HVALS', `${s.keyPrefix}factors:{u_alice}`)).includes('"c1"'), 'recovery codes only as digests')
})

t.test('redis: removing a passkey drops its pointer; a pointer naming another factor is left alone', async (t) => {
  const s = store()
  const k = passkey('u_bob')
  await s.store.add(k)
  const pointer = `${s.keyPrefix}passkey:${credentialDigest(k.credentialId)}`
  await s.store.remove('u_bob', k.id)
  t.equal(await admin.call('EXISTS', pointer), 0)
  t.equal(await admin.call('EXISTS', `${s.keyPrefix}factors:{u_bob}`), 0, 'an emptied hash is gone')

  // A pointer left by a crash between its claim and the add names nothing: lookups find nothing.
  const orphan = passkey('u_carol')
  await admin.call('SET', `${s.keyPrefix}passkey:${credentialDigest(orphan.credentialId)}`, `u_carol ${orphan.id}`)
  t.equal(await s.store.findPasskey(orphan.credentialId), null)
  t.same(await s.store.usePasskey(orphan.credentialId, 1, T0), { status: 'not_found' })
  t.equal(await s.store.add(orphan), 'exists', 'and that one credential id stays taken (an authenticator never makes it again)')
})

t.test('redis: a store down is StoreUnavailable, never an outcome', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, connectTimeoutMs: 300 })
  t.teardown(() => dead.disconnect())
  const s = new RedisFactorStore({ redis: dead })
  await t.rejects(s.list('u_x'), StoreUnavailable)
  await t.rejects(s.add(totp('u_x')), StoreUnavailable)
  await t.rejects(s.add(passkey('u_x')), StoreUnavailable)
  await t.rejects(s.useTotpStep('u_x', 'abc', 1, T0), StoreUnavailable)
  await t.rejects(s.usePasskey('cred', 1, T0), StoreUnavailable)
  await t.rejects(s.useRecoveryCode('u_x', 'h', T0), StoreUnavailable)
  await t.rejects(s.removeAll('u_x'), StoreUnavailable)
})
