import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { replayKey, type DpopReplayCache } from '@gatehouse/verifier'

/**
 * The DpopReplayCache contract (RFC 9449 §11.1) as the auth service relies on it: a proof is
 * accepted once, by every replica. Run against the verifier's memory cache and the Redis one.
 */

/** Two caches over one shared backing (two replicas), on `clock`. */
export type ReplayCacheFactory = (clock: ManualClock) => Promise<[DpopReplayCache, DpopReplayCache]>

function key(): string {
  return replayKey({ jkt: randomBytes(32).toString('base64url'), jti: randomBytes(16).toString('base64url') })
}

export function replayCacheContract(t: Test, factory: ReplayCacheFactory): void {
  t.test('a proof is accepted once; another proof is not affected', async (t) => {
    const clock = new ManualClock()
    const [cache] = await factory(clock)
    const k = key()
    const until = clock.now() + 65_000
    t.equal(await cache.claim(k, until), true, 'first')
    t.equal(await cache.claim(k, until), false, 'second')
    t.equal(await cache.claim(key(), until), true, 'another proof')
  })

  t.test('a proof accepted by one replica is refused by the other', async (t) => {
    const clock = new ManualClock()
    const [a, b] = await factory(clock)
    const k = key()
    t.equal(await a.claim(k, clock.now() + 65_000), true)
    t.equal(await b.claim(k, clock.now() + 65_000), false)
  })

  t.test('concurrent presentations of one proof: exactly one wins', async (t) => {
    const clock = new ManualClock()
    const [a, b] = await factory(clock)
    const k = key()
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).claim(k, clock.now() + 65_000)))
    t.equal(results.filter(Boolean).length, 1)
  })
}
