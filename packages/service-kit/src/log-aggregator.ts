/**
 * Aggregates a warning that repeats (one per request during an outage) into one line per
 * interval: the first occurrence of a key is logged at once, in full; further ones within the
 * interval are only counted, and when the interval ends one line says how many there were
 * (`{event, count, interval_ms}`). A key quiet for a whole interval is forgotten, so its next
 * occurrence is logged in full again. Memory is bounded by `maxKeys` distinct keys; beyond it,
 * occurrences of new keys are counted under one overflow key.
 */

export interface AggregatedLogger {
  warn(obj: object, msg?: string): void
}

export interface LogAggregatorOptions {
  /** Where interval summaries go (a request's logger may be gone by then): the app's logger. */
  logger: AggregatedLogger
  /** Length of an interval, ms (default 10 s). */
  intervalMs?: number
  /** ms since the epoch; injected so tests advance it instead of sleeping (default Date.now). */
  clock?: () => number
  /** Distinct keys tracked at once (default 100). */
  maxKeys?: number
  /** Flush summaries on a timer (unref'd) even when no new occurrence arrives (default true). */
  timer?: boolean
}

interface Window {
  startedAt: number
  /** Occurrences not logged in full since the window started. */
  count: number
  msg: string
}

export const OVERFLOW_KEY = 'log.other'

export class LogAggregator {
  readonly #logger: AggregatedLogger
  readonly #intervalMs: number
  readonly #clock: () => number
  readonly #maxKeys: number
  readonly #windows = new Map<string, Window>()
  #timer: NodeJS.Timeout | undefined

  constructor(opts: LogAggregatorOptions) {
    const intervalMs = opts.intervalMs ?? 10_000
    const maxKeys = opts.maxKeys ?? 100
    if (!Number.isInteger(intervalMs) || intervalMs <= 0) throw new TypeError(`LogAggregator option "intervalMs" must be a positive integer, got ${String(intervalMs)}`)
    if (!Number.isInteger(maxKeys) || maxKeys < 2) throw new TypeError(`LogAggregator option "maxKeys" must be an integer >= 2, got ${String(maxKeys)}`)
    this.#logger = opts.logger
    this.#intervalMs = intervalMs
    this.#clock = opts.clock ?? Date.now
    this.#maxKeys = maxKeys
    if (opts.timer !== false) {
      this.#timer = setInterval(() => this.flush(), intervalMs)
      this.#timer.unref()
    }
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#windows.size
  }

  /**
   * A warning identified by `key` (a closed set: an event name and a reason, never request data).
   * Logged through `log` (the request's logger) when it is the first of its interval.
   */
  warn(log: AggregatedLogger, key: string, fields: object, msg: string): void {
    const now = this.#clock()
    let w = this.#windows.get(key)
    if (w !== undefined && now - w.startedAt >= this.#intervalMs) {
      this.#summarise(key, w, now)
      w = this.#windows.get(key)
    }
    if (w !== undefined) {
      w.count++
      return
    }
    // Full (one slot is kept for the overflow key): a new key is counted under the overflow key.
    if (this.#windows.size >= this.#maxKeys - 1) {
      const overflow = this.#windows.get(OVERFLOW_KEY)
      if (overflow !== undefined) {
        overflow.count++
        return
      }
      this.#windows.set(OVERFLOW_KEY, { startedAt: now, count: 0, msg: 'warnings of other kinds' })
      log.warn({ ...fields, event: key }, msg)
      return
    }
    this.#windows.set(key, { startedAt: now, count: 0, msg })
    log.warn({ ...fields, event: key }, msg)
  }

  /** Writes the summary of every interval that has ended; forgets keys that stayed quiet. */
  flush(): void {
    const now = this.#clock()
    for (const [key, w] of [...this.#windows]) {
      if (now - w.startedAt >= this.#intervalMs) this.#summarise(key, w, now)
    }
  }

  /** Writes what is still counted and stops the timer. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    const now = this.#clock()
    for (const [key, w] of [...this.#windows]) this.#summarise(key, w, now)
    this.#windows.clear()
  }

  /** One line for an ended window; the key stays tracked (a new window) only while it keeps repeating. */
  #summarise(key: string, w: Window, now: number): void {
    if (w.count === 0) {
      this.#windows.delete(key)
      return
    }
    this.#logger.warn({ event: key, count: w.count, interval_ms: this.#intervalMs }, `${w.msg} (repeated)`)
    w.count = 0
    w.startedAt = now
  }
}
