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

/**
 * A single-use claim shared by every replica: `SET name 1 NX PX ttl`, true for the first caller
 * only, until the key expires at `untilMs` (of `now`'s clock). The replay stores of client
 * assertions (directory/redis-replay.ts) and of DPoP proofs (dpop/redis-replay.ts) are this one call.
 */
export async function claimOnce(redis: Pick<import('ioredis').Redis, 'set'>, op: string, name: string, untilMs: number, now: number): Promise<boolean> {
  const ttl = Math.max(1, Math.ceil(untilMs - now))
  return (await redisCall(op, () => redis.set(name, '1', 'PX', ttl, 'NX'))) === 'OK'
}
