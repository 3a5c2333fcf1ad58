import { createHash } from 'node:crypto'
import type { Clock } from '../store/types.js'

/**
 * One-time use of client assertions (RFC 7523 §3 item 7: "The authorization server MAY ensure
 * that JWTs are not replayed by maintaining the set of used jti values for the length of time
 * for which the JWT would be considered valid"). A (client, jti) pair is claimed once, until the
 * assertion's `exp`; every replica sees the same set through Redis.
 */
export interface ReplayStore {
  /** True the first time (client, jti) is seen before `untilMs`; false for a replay. */
  claim(clientId: string, jti: string, untilMs: number): Promise<boolean>
}

/** The key is a digest, so neither the jti nor the client id shape the key name. */
export function digest(clientId: string, jti: string): string {
  return createHash('sha256').update(clientId).update('\n').update(jti).digest('base64url')
}

export class MemoryReplayStore implements ReplayStore {
  readonly #clock: Clock
  readonly #seen = new Map<string, number>()
  #lastSweep = 0

  constructor(options: { clock?: Clock } = {}) {
    this.#clock = options.clock ?? Date.now
  }

  async claim(clientId: string, jti: string, untilMs: number): Promise<boolean> {
    const now = this.#clock()
    if (now - this.#lastSweep >= 60_000 || this.#seen.size > 10_000) {
      this.#lastSweep = now
      for (const [k, until] of this.#seen) if (now >= until) this.#seen.delete(k)
    }
    const key = digest(clientId, jti)
    const until = this.#seen.get(key)
    if (until !== undefined && now < until) return false
    this.#seen.set(key, Math.max(untilMs, now + 1))
    return true
  }
}
