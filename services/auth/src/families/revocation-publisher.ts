import type { Redis, Cluster } from 'ioredis'
import { encodeRevocation, RECENT_REVOCATIONS_KEY, REVOCATION_CHANNEL } from '@gatehouse/service-kit'
import { redisCall } from '../store/redis-call.js'

/**
 * Tells resource services that a family's access tokens are dead (DESIGN §6). The family store
 * announces every revocation itself, in the step that revokes (families/redis-scripts.ts; the memory
 * store calls its `announce` option): the request path never publishes in a second call.
 */
export interface RevocationPublisher {
  /** `exp`: seconds since the epoch after which the family's access tokens expire anyway. */
  publish(sid: string, exp: number): Promise<void>
}

/**
 * Without Redis nobody listens: access tokens live until they expire (documented trade-off).
 * The memory family store announces here; the last announcements are kept for tests.
 */
export class NoopRevocationPublisher implements RevocationPublisher {
  async publish(): Promise<void> {}
}

/**
 * One announcement written directly (recent set, then PUBLISH), for callers outside the family
 * store. Any Redis failure is StoreUnavailable (503 temporarily_unavailable), never a 500.
 */
export class RedisRevocationPublisher implements RevocationPublisher {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly clock: () => number,
  ) {}

  async publish(sid: string, exp: number): Promise<void> {
    await redisCall('announce', async () => {
      await writeRecentRevocation(this.redis, sid, exp, Math.floor(this.clock() / 1000))
      await this.redis.publish(REVOCATION_CHANNEL, encodeRevocation({ sid, exp }))
    })
  }
}

/**
 * A revocation's entry in the recent set, which lets a subscriber that was disconnected catch up;
 * entries past their exp are useless and trimmed on every write. One key, so MULTI works in
 * Cluster too. `nowS`: seconds since the epoch.
 */
export async function writeRecentRevocation(redis: Redis | Cluster, sid: string, exp: number, nowS: number): Promise<void> {
  const ttl = Math.max(1, exp - nowS)
  const res = await redis
    .multi()
    .zadd(RECENT_REVOCATIONS_KEY, 'GT', exp, sid)
    .zremrangebyscore(RECENT_REVOCATIONS_KEY, '-inf', nowS)
    .expire(RECENT_REVOCATIONS_KEY, ttl, 'NX')
    .expire(RECENT_REVOCATIONS_KEY, ttl, 'GT')
    .exec()
  const failed = res?.find(([err]) => err !== null)
  if (res === null || failed !== undefined) throw failed?.[0] ?? new Error('transaction aborted')
}
