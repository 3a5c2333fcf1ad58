/**
 * Announcements of revoked families that must be written outside the revoking script: in Redis
 * Cluster the recent-revocations set lives in another slot than the family (CROSSSLOT), so the
 * script PUBLISHes and this outbox writes the set afterwards. A write that fails is retried with
 * backoff until it succeeds or the entry's `exp` passes (then the family's access tokens are dead
 * anyway and the entry is useless); it is never dropped silently. Memory is bounded: when full,
 * the entry that expires first is dropped, and reported as such.
 */

export interface AnnouncementEvent {
  /** `failed`: one write failed and is retried; `dropped`: given up (outbox full, or past exp); `delivered`: written after at least one failure. */
  kind: 'failed' | 'dropped' | 'delivered'
  sid: string
  attempts: number
  error?: string
}

export interface RevocationOutboxOptions {
  /** Writes one entry (ZADD to the recent set); rejects on any failure. */
  write(sid: string, exp: number): Promise<void>
  /** ms since the epoch */
  clock: () => number
  maxEntries?: number
  /** Backoff bounds (ms). */
  minDelayMs?: number
  maxDelayMs?: number
  onEvent?: (event: AnnouncementEvent) => void
}

interface Entry {
  exp: number
  attempts: number
}

export class RevocationOutbox {
  readonly #o: Required<Omit<RevocationOutboxOptions, 'onEvent'>> & { onEvent: (e: AnnouncementEvent) => void }
  /** sid → entry; an entry re-announced while waiting keeps the later exp. */
  readonly #pending = new Map<string, Entry>()
  #timer: NodeJS.Timeout | undefined
  #running = false
  #closed = false

  constructor(options: RevocationOutboxOptions) {
    this.#o = {
      maxEntries: 10_000,
      minDelayMs: 100,
      maxDelayMs: 5_000,
      onEvent: () => undefined,
      ...options,
    }
  }

  /** Entries not yet written. */
  get size(): number {
    return this.#pending.size
  }

  /** Queues one entry and starts writing at once. Never throws. */
  add(sid: string, exp: number): void {
    if (this.#closed) return
    const prev = this.#pending.get(sid)
    if (prev !== undefined) {
      prev.exp = Math.max(prev.exp, exp)
    } else {
      if (this.#pending.size >= this.#o.maxEntries) this.#dropFirstToExpire()
      this.#pending.set(sid, { exp, attempts: 0 })
    }
    this.#schedule(0)
  }

  /** Resolves when every entry has been written (or dropped); for tests and shutdown. */
  async drain(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (this.#pending.size > 0 || this.#running) {
      if (Date.now() > deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    return true
  }

  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #schedule(delayMs: number): void {
    if (this.#closed || this.#running || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#flush()
    }, delayMs)
    this.#timer.unref()
  }

  async #flush(): Promise<void> {
    this.#running = true
    let failedAttempts = 0
    try {
      for (const [sid, entry] of [...this.#pending]) {
        if (this.#closed) return
        if (entry.exp <= Math.floor(this.#o.clock() / 1000)) {
          this.#pending.delete(sid)
          this.#o.onEvent({ kind: 'dropped', sid, attempts: entry.attempts, error: 'expired before it could be written' })
          continue
        }
        const exp = entry.exp
        try {
          entry.attempts++
          await this.#o.write(sid, exp)
          // A newer exp that arrived during the write is written on the next pass.
          if (this.#pending.get(sid) === entry && entry.exp === exp) this.#pending.delete(sid)
          if (entry.attempts > 1) this.#o.onEvent({ kind: 'delivered', sid, attempts: entry.attempts })
        } catch (err) {
          failedAttempts = Math.max(failedAttempts, entry.attempts)
          this.#o.onEvent({ kind: 'failed', sid, attempts: entry.attempts, error: err instanceof Error ? err.message : String(err) })
        }
      }
    } finally {
      this.#running = false
    }
    if (this.#pending.size > 0) {
      const delay = failedAttempts === 0 ? 0 : Math.min(this.#o.maxDelayMs, this.#o.minDelayMs * 2 ** Math.min(failedAttempts - 1, 10))
      this.#schedule(delay)
    }
  }

  #dropFirstToExpire(): void {
    let first: [string, Entry] | undefined
    for (const e of this.#pending) if (first === undefined || e[1].exp < first[1].exp) first = e
    if (first === undefined) return
    this.#pending.delete(first[0])
    this.#o.onEvent({ kind: 'dropped', sid: first[0], attempts: first[1].attempts, error: 'outbox full' })
  }
}

/**
 * Whether an announcement event is written to the log. Every event counts in the metrics; a
 * `failed` one is logged at an entry's 1st, 2nd, 4th, 8th, … attempt only: while the node of the
 * recent set is down, every pass fails every pending entry (up to maxEntries, every few seconds),
 * and a line for each would flood the log (issue 20, defect 6) yet say nothing new.
 */
export function shouldLogAnnouncement(e: AnnouncementEvent): boolean {
  return e.kind !== 'failed' || (e.attempts & (e.attempts - 1)) === 0
}
