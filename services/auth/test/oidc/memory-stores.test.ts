import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { MemoryAuthorizationCodeStore } from '../../src/authorize/codes.js'
import { MemoryReplayStore } from '../../src/directory/replay.js'
import { MemoryLoginSessionStore } from '../../src/signin/sessions.js'
import { CLOCK_START, SESSION_TTL_MS, storeContracts } from './store-contracts.js'

storeContracts(t, async () => {
  const clock = new ManualClock(CLOCK_START)
  return {
    clock,
    sessions: new MemoryLoginSessionStore({ ttlMs: SESSION_TTL_MS, clock: clock.now }),
    codes: new MemoryAuthorizationCodeStore({ clock: clock.now }),
    replay: new MemoryReplayStore({ clock: clock.now }),
  }
})

t.test('memory replay store: a jti may be used again once its assertion has expired', async (t) => {
  const clock = new ManualClock(CLOCK_START)
  const replay = new MemoryReplayStore({ clock: clock.now })
  t.equal(await replay.claim('svc', 'j', clock.ms + 1000), true)
  clock.advance(999)
  t.equal(await replay.claim('svc', 'j', clock.ms + 1000), false)
  clock.advance(1)
  t.equal(await replay.claim('svc', 'j', clock.ms + 1000), true, 'the old claim lapsed with the assertion')
})

t.test('option checks', async (t) => {
  t.throws(() => new MemoryLoginSessionStore({ ttlMs: 0 }), /ttlMs/)
  t.throws(() => new MemoryAuthorizationCodeStore({ lifetimeMs: -1 }), /lifetimeMs/)
})
