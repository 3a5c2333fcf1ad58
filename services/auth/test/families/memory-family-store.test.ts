import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { MemoryFamilyStore } from '../../src/families/memory-family-store.js'
import { RefreshTokenCodec } from '../../src/families/refresh-token-codec.js'
import { CLOCK_START, DAY, DEFAULT_TEST_POLICY, HOUR, familyStoreContract } from './family-store-contract.js'

t.test('contract', async (t) => {
  familyStoreContract(t, async ({ clock, policy, codec, announce, accessTokenTtlS }) => new MemoryFamilyStore({ clock, policy, codec, ...(announce ? { announce } : {}), ...(accessTokenTtlS ? { accessTokenTtlS } : {}) }))
})

t.test('memory stays bounded: expired families are swept with their index entries', async (t) => {
  const clock = new ManualClock(CLOCK_START)
  const codec = new RefreshTokenCodec(randomBytes(32))
  const store = new MemoryFamilyStore({ clock: clock.now, policy: DEFAULT_TEST_POLICY, codec, sweepIntervalMs: HOUR })
  for (let i = 0; i < 100; i++) await store.create({ userId: `u${i % 10}`, clientId: 'c', scope: 's', sessionId: `s${i}`, authTime: 0 })
  const revoked = await store.create({ userId: 'u0', clientId: 'c', scope: 's', authTime: 0 })
  await store.revoke(revoked.family.id, 'admin')
  t.equal(store.size, 101)

  clock.advance(DEFAULT_TEST_POLICY.idleTtlMs - 1)
  t.equal(store.sweep(), 0, 'nothing is swept while alive (revoked families stay to answer "revoked")')
  t.match(await store.rotate(revoked.refreshToken, { clientId: 'c' }), { status: 'revoked' })

  clock.advance(HOUR) // past the idle expiry of all 101, and a sweep interval since the last sweep
  const fresh = await store.create({ userId: 'u0', clientId: 'c', scope: 's', sessionId: 'new', authTime: 0 })
  t.equal(store.size, 1, 'the next create swept the 101 expired families')
  t.same((await store.listByUser('u0')).map((f) => f.id), [fresh.family.id])
  t.same(await store.revokeBySession('s1', 'logout'), [])
  t.same((await store.revokeBySession('new', 'logout')).map((f) => f.id), [fresh.family.id])

  clock.advance(30 * DAY)
  t.equal(store.sweep(), 1)
  t.equal(store.size, 0)
  await store.close()
})

t.test('rejects a bad policy, naming the option', async (t) => {
  const codec = new RefreshTokenCodec(randomBytes(32))
  t.throws(
    () => new MemoryFamilyStore({ codec, policy: { absoluteTtlMs: 0, idleTtlMs: 1, reuseGraceMs: -1 } }),
    /policy\.absoluteTtlMs.*policy\.reuseGraceMs/,
  )
  t.throws(() => new MemoryFamilyStore({ codec: {} as RefreshTokenCodec, policy: DEFAULT_TEST_POLICY }), /codec/)
})
