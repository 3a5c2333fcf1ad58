import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { MemoryPushedRequestStore } from '../../src/par/request-store.js'
import { CLOCK_START, LIFETIME_MS, requestStoreContract } from './request-store-contract.js'

requestStoreContract(t, async () => {
  const clock = new ManualClock(CLOCK_START)
  return { clock, store: new MemoryPushedRequestStore({ lifetimeMs: LIFETIME_MS, clock: clock.now }) }
})

t.test('option checks', async (t) => {
  t.throws(() => new MemoryPushedRequestStore({ lifetimeMs: 0 }), /lifetimeMs/)
  t.throws(() => new MemoryPushedRequestStore({ lifetimeMs: 1.5 }), /lifetimeMs/)
})
