import type { Cluster, Redis } from 'ioredis'
import type { ClientDirectory } from './clients.js'
import type { AuthFileConfig } from './config-file.js'
import { hashPassword } from './passwords.js'
import { redisCall as call } from './redis-call.js'
import { DEFAULT_KEY_PREFIX, directorySeededKey } from './store/keys.js'
import { canonicalUsername, userIdFor, type UserDirectory } from './users.js'
import { RedisClientDirectory, RedisUserDirectory } from './redis-directory.js'
import { waitForRedis } from './store/redis-connection.js'
import { StoreUnavailable } from './store/types.js'

export interface SeedResult {
  users: number
  clients: number
}

/**
 * Seeds the store with the config file's users and clients (so a development
 * stack on Redis starts from the file), each entry ONCE: an entry already
 * seeded is remembered in a set and never written again, so a password
 * changed, or a user deleted, with the CLI is not undone by the next start.
 * An entry that already exists in the store is left alone too. Seeded users
 * keep `userIdFor(username)`, the subject the in-memory directory gives them.
 */
export async function seedDirectories(
  redis: Redis | Cluster,
  dirs: { users: UserDirectory; clients: ClientDirectory },
  file: Pick<AuthFileConfig, 'users' | 'clients'>,
  keyPrefix: string = DEFAULT_KEY_PREFIX,
): Promise<SeedResult> {
  const seededKey = directorySeededKey(keyPrefix)
  const result: SeedResult = { users: 0, clients: 0 }
  for (const u of file.users) {
    const marker = `user:${canonicalUsername(u.username)}`
    if ((await call('seed', () => redis.sismember(seededKey, marker))) === 1) continue
    if ((await dirs.users.findByUsername(u.username)) === null) {
      const passwordHash = u.password_hash ?? (await hashPassword(u.password!))
      const added = await dirs.users.add({ id: userIdFor(u.username), username: u.username, passwordHash, roles: u.roles, claims: u.claims, disabled: u.disabled })
      if (added.status === 'created') result.users++
    }
    await call('seed', () => redis.sadd(seededKey, marker))
  }
  for (const c of file.clients) {
    const marker = `client:${c.client_id}`
    if ((await call('seed', () => redis.sismember(seededKey, marker))) === 1) continue
    if ((await dirs.clients.add(c)).status === 'created') result.clients++
    await call('seed', () => redis.sadd(seededKey, marker))
  }
  return result
}

/**
 * The Redis user and client directories, seeded from the config file (the
 * store is the source of truth; DESIGN §3). Waits for Redis first: a service
 * that cannot read its users must not report ready.
 */
export async function openRedisDirectories(
  redis: Redis | Cluster,
  file: Pick<AuthFileConfig, 'users' | 'clients'>,
  log: { info(obj: object, msg?: string): void },
  clock: () => number = Date.now,
): Promise<{ users: RedisUserDirectory; clients: RedisClientDirectory }> {
  const deadline = Date.now() + 10_000
  await waitForRedis(redis, 10_000)
  const users = new RedisUserDirectory({ redis, clock })
  const clients = new RedisClientDirectory({ redis, clock })
  let seeded: SeedResult
  for (;;) {
    try {
      seeded = await seedDirectories(redis, { users, clients }, file)
      break
    } catch (err) {
      // Seeding is idempotent: a command that timed out on a busy Redis is simply tried again.
      if (!(err instanceof StoreUnavailable) || Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  if (seeded.users + seeded.clients > 0) log.info({ event: 'directory.seeded', users: seeded.users, clients: seeded.clients }, 'seeded users and clients from the config file')
  return { users, clients }
}
