import type { Cluster, Redis } from 'ioredis'
import type { DpopReplayCache } from '@gatehouse/verifier'
import { claimOnce } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, dpopProofKey } from '../store/key-names.js'
import type { Clock } from '../store/types.js'

/**
 * Single use of DPoP proofs across replicas (RFC 9449 §11.1): `SET key 1 NX PX ttl`, so the first
 * replica to see a proof wins and every other one refuses it, until the proof would be refused as
 * too old anyway. One command per proof, on the request connection.
 */
export class RedisDpopReplayCache implements DpopReplayCache {
  readonly #redis: Redis | Cluster
  readonly #clock: Clock
  readonly #prefix: string

  constructor(options: { redis: Redis | Cluster; clock?: Clock; keyPrefix?: string }) {
    this.#redis = options.redis
    this.#clock = options.clock ?? Date.now
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
  }

  async claim(key: string, expiresAtMs: number): Promise<boolean> {
    return await claimOnce(this.#redis, 'dpop proof claim', dpopProofKey(key, this.#prefix), expiresAtMs, this.#clock())
  }
}
