/** 2026-01-01T00:00:00Z: where a ManualClock starts unless told otherwise. */
export const DEFAULT_CLOCK_START = Date.UTC(2026, 0, 1)

/**
 * The one clock of the tests: it moves only when the test moves it, so nothing sleeps for timing.
 * `now` is the `() => number` (milliseconds since the epoch) every package takes as its clock.
 *
 * `ManualClock.following(Date.now)` is the same clock on top of the real time: it runs with it
 * and can be moved ahead, for a library outside the test's control (a relying party) that checks
 * `iat` and `exp` against its own clock.
 */
export class ManualClock {
  #offset: number
  readonly #base: () => number

  constructor(startMs: number = DEFAULT_CLOCK_START, base: () => number = () => 0) {
    this.#base = base
    this.#offset = startMs - base()
  }

  /** A clock that follows `base` (e.g. Date.now) and that the test can move ahead of it. */
  static following(base: () => number): ManualClock {
    return new ManualClock(base(), base)
  }

  /** The time now, in milliseconds. */
  get ms(): number {
    return this.#base() + this.#offset
  }

  set ms(value: number) {
    this.#offset = value - this.#base()
  }

  /** The clock function to inject: milliseconds since the epoch. */
  readonly now = (): number => this.ms

  /** Whole seconds since the epoch (JWT `iat`/`exp`). */
  seconds(): number {
    return Math.floor(this.ms / 1000)
  }

  set(ms: number): void {
    this.ms = ms
  }

  /** Moves the clock on by `ms` milliseconds; returns the new time. */
  advance(ms: number): number {
    this.#offset += ms
    return this.ms
  }

  /** Moves the clock on by `seconds`; returns the new time in milliseconds. */
  advanceSeconds(seconds: number): number {
    return this.advance(seconds * 1000)
  }
}
