import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, pushedRequestKey } from '../store/key-names.js'
import type { Clock } from '../store/types.js'
import {
  REFERENCE,
  decodeStored,
  newReference,
  referenceHash,
  storeSettings,
  takeOutcome,
  type PushedRequest,
  type PushedRequestStore,
  type PushedRequestStoreOptions,
  type StoredPushedRequest,
  type TakeOutcome,
} from './request-store.js'

/**
 * Take, atomically: read and delete in one step, so two concurrent uses of one request_uri cannot
 * both read it (GETDEL, as a script so that Redis before 6.2 runs it too). KEYS[1] the request key.
 */
const TAKE_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
end
return v
`

interface TakeScript {
  gatehouseParTake: (key: string) => Promise<unknown>
}

export interface RedisPushedRequestStoreOptions extends PushedRequestStoreOptions {
  redis: Redis | Cluster
  keyPrefix?: string
}

/**
 * Pushed requests in Redis: one string key per request under the SHA-256 of its reference (the
 * reference itself is never stored), JSON, TTL the request's lifetime. Expiry is decided with the
 * injected clock (the stored `expiresAt`); the TTL only cleans up. One key per step: Cluster-safe.
 */
export class RedisPushedRequestStore implements PushedRequestStore {
  readonly #redis: Redis | Cluster
  readonly #script: TakeScript
  readonly #s: { lifetimeMs: number; clock: Clock }
  readonly #prefix: string

  constructor(options: RedisPushedRequestStoreOptions) {
    this.#s = storeSettings(options)
    this.#redis = options.redis
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#redis.defineCommand('gatehouseParTake', { numberOfKeys: 1, lua: TAKE_SCRIPT })
    this.#script = this.#redis as unknown as TakeScript
  }

  async push(request: PushedRequest): Promise<string> {
    const reference = newReference()
    const key = pushedRequestKey(referenceHash(reference), this.#prefix)
    const stored: StoredPushedRequest = { clientId: request.clientId, params: request.params, expiresAt: this.#s.clock() + this.#s.lifetimeMs }
    await call('pushed request push', () => this.#redis.set(key, JSON.stringify(stored), 'PX', this.#s.lifetimeMs))
    return reference
  }

  async take(reference: string, clientId: string): Promise<TakeOutcome> {
    if (typeof reference !== 'string' || !REFERENCE.test(reference)) return { status: 'not_found' }
    const key = pushedRequestKey(referenceHash(reference), this.#prefix)
    const raw = await call('pushed request take', () => this.#script.gatehouseParTake(key))
    return takeOutcome(decodeStored(raw), clientId, this.#s.clock())
  }
}
