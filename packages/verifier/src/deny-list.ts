/**
 * Revoked `sid`s, each kept until its event's `exp` (plus the clock
 * tolerance, since an access token is accepted that long past its `exp`):
 * after that no access token of the family can be valid anyway (DESIGN §6).
 * Bounded: when full, expired entries are swept first, then the entries that
 * expire soonest are dropped (and the caller is told, to log it).
 */
export class DenyList {
  /** sid -> the instant (ms) after which the entry can be forgotten. */
  readonly #entries = new Map<string, number>()
  readonly #max: number
  readonly #toleranceMs: number

  constructor(maxEntries: number, clockToleranceSeconds: number) {
    this.#max = maxEntries
    this.#toleranceMs = clockToleranceSeconds * 1000
  }

  get size(): number {
    return this.#entries.size
  }

  /** Adds (or extends) an entry; returns how many live entries had to be dropped to stay bounded. */
  add(sid: string, expSeconds: number, nowMs: number): number {
    const until = expSeconds * 1000 + this.#toleranceMs
    if (until <= nowMs) return 0
    const current = this.#entries.get(sid)
    if (current !== undefined) {
      if (until > current) this.#entries.set(sid, until)
      return 0
    }
    let dropped = 0
    if (this.#entries.size >= this.#max) {
      this.sweep(nowMs)
      // Drop a batch, so a flood of revocations does not sort the whole list on every event.
      if (this.#entries.size >= this.#max) dropped = this.#dropSoonest(Math.max(this.#entries.size - this.#max + 1, Math.ceil(this.#max / 100)))
    }
    this.#entries.set(sid, until)
    return dropped
  }

  has(sid: string, nowMs: number): boolean {
    const until = this.#entries.get(sid)
    if (until === undefined) return false
    if (until <= nowMs) {
      this.#entries.delete(sid)
      return false
    }
    return true
  }

  sweep(nowMs: number): void {
    for (const [sid, until] of this.#entries) if (until <= nowMs) this.#entries.delete(sid)
  }

  #dropSoonest(n: number): number {
    const sorted = [...this.#entries].sort((a, b) => a[1] - b[1])
    const k = Math.min(n, sorted.length)
    for (let i = 0; i < k; i++) this.#entries.delete(sorted[i]![0])
    return k
  }
}
