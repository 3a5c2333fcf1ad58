import type { Cluster, Redis } from 'ioredis'
import type { ClientDirectory } from './clients.js'
import { clientConfigFromRecord, RedisUserDirectory, scanPage } from './redis-directory.js'
import type { UserDirectory } from './users.js'
import { redisCall as call } from '../store/redis-call.js'
import { clientRecordPattern, DEFAULT_KEY_PREFIX } from '../store/key-names.js'

export interface CopyCounts {
  /** Copied (or, in a dry run, would be). */
  copied: number
  /** Already in the target (same id, username or email; same client_id): left as it is. */
  skipped: number
}

export interface RedisImportResult {
  users: CopyCounts
  clients: CopyCounts
}

/**
 * Copies a Redis-held directory (users with their ids, so every `sub` stays the same, and password
 * hashes; clients with their secret hashes) into another directory, PostgreSQL (`gatehouse db
 * import-redis`, DESIGN §10.2). Idempotent: what the target holds already is skipped, never
 * overwritten, so running it again (or after the service seeded the config file's entries)
 * copies only what is missing. Redis is only read.
 */
export async function importRedisDirectory(
  redis: Redis | Cluster,
  target: { users: UserDirectory; clients: ClientDirectory },
  opts: { dryRun?: boolean; keyPrefix?: string } = {},
): Promise<RedisImportResult> {
  const keyPrefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX
  const result: RedisImportResult = { users: { copied: 0, skipped: 0 }, clients: { copied: 0, skipped: 0 } }
  const source = new RedisUserDirectory({ redis, keyPrefix })
  let cursor: string | undefined
  do {
    const page = await source.list({ cursor, limit: 500 })
    for (const u of page.users) {
      let fresh: boolean
      if (opts.dryRun === true) {
        fresh = (await target.users.findById(u.id)) === null && (await target.users.findByUsername(u.username)) === null && (u.email === undefined || (await target.users.findByEmail(u.email)) === null)
      } else {
        fresh = (await target.users.add({ id: u.id, username: u.username, email: u.email, passwordHash: u.passwordHash, roles: u.roles, claims: u.claims, disabled: u.disabled })).status === 'created'
      }
      result.users[fresh ? 'copied' : 'skipped']++
    }
    cursor = page.cursor ?? undefined
  } while (cursor !== undefined)

  cursor = undefined
  do {
    const page = await scanPage(redis, clientRecordPattern(keyPrefix), cursor, 500)
    for (const key of page.keys) {
      const config = clientConfigFromRecord(await call('clients.import', () => redis.hgetall(key)))
      if (config === null) continue // removed while we read
      const fresh = opts.dryRun === true ? (await target.clients.get(config.client_id)) === null : (await target.clients.add(config)).status === 'created'
      result.clients[fresh ? 'copied' : 'skipped']++
    }
    cursor = page.cursor ?? undefined
  } while (cursor !== undefined)
  return result
}
