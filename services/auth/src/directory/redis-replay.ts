import type { Cluster, Redis } from 'ioredis'
import { claimOnce } from '../store/redis-call.js'
import { assertionJtiKey, DEFAULT_KEY_PREFIX } from '../store/key-names.js'
import type { Clock } from '../store/types.js'
import { digest, type ReplayStore } from './replay.js'

/** SET NX PX: the first claim wins on every replica; the key expires with the assertion. */
export class RedisReplayStore implements ReplayStore {
  readonly #redis: Redis | Cluster
  readonly #clock: Clock
  readonly #prefix: string

  constructor(options: { redis: Redis | Cluster; clock?: Clock; keyPrefix?: string }) {
    this.#redis = options.redis
    this.#clock = options.clock ?? Date.now
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
  }

  async claim(clientId: string, jti: string, untilMs: number): Promise<boolean> {
    return await claimOnce(this.#redis, 'jti claim', assertionJtiKey(digest(clientId, jti), this.#prefix), untilMs, this.#clock())
  }
}
