import { StoreUnavailable } from './types.js'

/**
 * Runs one Redis operation of a store: any failure (connection down,
 * timeout, error reply) becomes StoreUnavailable, which the error handler answers with 503
 * temporarily_unavailable, never a 500.
 */
export async function redisCall<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof StoreUnavailable) throw err
    throw new StoreUnavailable(`redis: ${op} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}
