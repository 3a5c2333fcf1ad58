import t from 'tap'
import { MemoryFactorStore, isFactorId, newFactorId } from '../../src/mfa/factors.js'
import { factorStoreContract } from './factor-store-contract.js'

factorStoreContract(t, async () => ({ store: new MemoryFactorStore(), addUser: async () => undefined }))

t.test('newFactorId: 128 random bits, url-safe, a valid factor id', async (t) => {
  const ids = new Set(Array.from({ length: 100 }, newFactorId))
  t.equal(ids.size, 100)
  for (const id of ids) {
    t.match(id, /^[A-Za-z0-9_-]{22}$/)
    t.ok(isFactorId(id))
  }
})
