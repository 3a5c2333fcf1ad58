/**
 * What every store shares, whatever it keeps: the injected clock and the one error a store
 * throws for infrastructure failures. Protocol outcomes are values, never exceptions.
 */

/** Milliseconds since the epoch. Injected so tests can advance time. */
export type Clock = () => number

/** The backend could not be reached or answered with an error: map to 503 temporarily_unavailable. */
export class StoreUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreUnavailable'
  }
}
