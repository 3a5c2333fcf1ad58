import { Cluster, Redis } from 'ioredis'
import { MemoryFamilyStore } from './memory-family-store.js'
import { RedisFamilyStore } from './redis-family-store.js'
import { createRedis, type RedisConnectionOptions } from '../store/redis-connection.js'
import type { RefreshTokenCodec } from './refresh-token-codec.js'
import type { FamilyPolicy, FamilyStore } from './types.js'
import type { Clock } from '../store/types.js'

export * from './types.js'
export { StoreUnavailable, type Clock } from '../store/types.js'
export { RefreshTokenCodec, type ParsedRefreshToken } from './refresh-token-codec.js'
export { DEFAULT_KEY_PREFIX, familyKeys, isFamilyId, type FamilyKeys } from '../store/key-names.js'
export { MemoryFamilyStore, type MemoryFamilyStoreOptions } from './memory-family-store.js'
export { RedisFamilyStore, type RedisFamilyStoreOptions } from './redis-family-store.js'
export { createRedis, waitForRedis, type RedisConnectionOptions, type RedisHost } from '../store/redis-connection.js'
export { RevocationOutbox, type AnnouncementEvent, type RevocationOutboxOptions } from './revocation-outbox.js'

export interface CreateFamilyStoreOptions {
  codec: RefreshTokenCodec
  policy: FamilyPolicy
  clock?: Clock
  /**
   * Unset: the in-memory store (development only; refusing it in production is the config's
   * job). Connection options: a connection is created and owned (closed by `close()`). A client:
   * used as is and left open by `close()`.
   */
  redis?: RedisConnectionOptions | Redis | Cluster
  /** Redis key prefix (default `gatehouse:`); falls back to `redis.keyPrefix` of connection options. */
  keyPrefix?: string
}

export function createFamilyStore(opts: CreateFamilyStoreOptions): FamilyStore {
  const { codec, policy, clock } = opts
  const common = { codec, policy, ...(clock === undefined ? {} : { clock }) }
  if (opts.redis === undefined) return new MemoryFamilyStore(common)
  if (opts.redis instanceof Redis || opts.redis instanceof Cluster) {
    return new RedisFamilyStore({
      ...common,
      redis: opts.redis,
      ownsConnection: false,
      ...(opts.keyPrefix === undefined ? {} : { keyPrefix: opts.keyPrefix }),
    })
  }
  const keyPrefix = opts.keyPrefix ?? opts.redis.keyPrefix
  return new RedisFamilyStore({
    ...common,
    redis: createRedis(opts.redis),
    ownsConnection: true,
    ...(keyPrefix === undefined ? {} : { keyPrefix }),
  })
}
