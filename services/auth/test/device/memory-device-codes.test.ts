import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { MemoryDeviceCodeStore, formatUserCode, newUserCode, normalizeUserCode, USER_CODE_ALPHABET } from '../../src/device/device-codes.js'
import { CLOCK_START, INTERVAL_S, TTL_MS, deviceCodeStoreContract } from './device-code-store-contract.js'

deviceCodeStoreContract(t, async () => {
  const clock = new ManualClock(CLOCK_START)
  return { clock, store: new MemoryDeviceCodeStore({ ttlMs: TTL_MS, intervalSeconds: INTERVAL_S, clock: clock.now }) }
})

t.test('user codes: typed in any case, with dashes or spaces, are the same code; anything else is none', async (t) => {
  t.equal(normalizeUserCode('BCDF-GHJK'), 'BCDFGHJK')
  t.equal(normalizeUserCode('bcdf-ghjk'), 'BCDFGHJK')
  t.equal(normalizeUserCode(' bcdf ghjk '), 'BCDFGHJK')
  t.equal(normalizeUserCode('B-C-D-F-G-H-J-K'), 'BCDFGHJK')
  t.equal(formatUserCode('BCDFGHJK'), 'BCDF-GHJK')
  for (const bad of ['', 'BCDF-GHJ', 'BCDF-GHJKL', 'ABCD-EFGH', 'BCDF-GHJ1', 'BCDF_GHJK', 'ＢCDF-GHJK', 'BCDF-GHJK'.repeat(8)]) {
    t.equal(normalizeUserCode(bad), null, JSON.stringify(bad))
  }
})

t.test('user codes use every letter of the alphabet and nothing else (no vowels: no words, RFC 8628 §6.1)', async (t) => {
  const seen = new Set<string>()
  for (let i = 0; i < 500; i++) for (const c of newUserCode()) seen.add(c)
  t.same([...seen].sort().join(''), USER_CODE_ALPHABET)
})

t.test('memory: requests past their retention are swept, so memory follows the live ones', async (t) => {
  const clock = new ManualClock(CLOCK_START)
  const store = new MemoryDeviceCodeStore({ ttlMs: TTL_MS, intervalSeconds: INTERVAL_S, clock: clock.now })
  for (let i = 0; i < 50; i++) await store.start({ clientId: 'tv', scope: '' })
  t.equal(store.size, 50)
  clock.advance(2 * TTL_MS + 60_000)
  await store.start({ clientId: 'tv', scope: '' })
  t.equal(store.size, 1)
})
