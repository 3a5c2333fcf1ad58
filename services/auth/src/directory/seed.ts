import type { Cluster, Redis } from 'ioredis'
import type { ClientDirectory } from './clients.js'
import type { AuthFileConfig } from './config-file.js'
import { hashPassword } from './passwords.js'
import { redisCall as call } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, directorySeededKey } from '../store/key-names.js'
import { canonicalUsername, userIdFor, type UserDirectory } from './users.js'
import { RedisClientDirectory, RedisUserDirectory } from './redis-directory.js'
import { waitForRedis } from '../store/redis-connection.js'
import { StoreUnavailable } from '../store/types.js'

/**
 * Member of the seeded set written once a whole seeding pass has finished. Its absence means the
 * directory is not there: a new store, or a Redis that lost its data (restarted empty).
 */
const SEED_COMPLETE = 'complete'

export interface SeedResult {
  users: number
  clients: number
}

/**
 * Which config-file entries were seeded already (a Redis set, a PostgreSQL table): each is
 * seeded ONCE, so a password changed, or a user deleted, with the CLI is not undone by the next
 * start.
 */
export interface SeedMarks {
  has(marker: string): Promise<boolean>
  add(marker: string): Promise<void>
}

/** The seeded markers in a Redis set. */
export function redisSeedMarks(redis: Redis | Cluster, keyPrefix: string = DEFAULT_KEY_PREFIX): SeedMarks {
  const key = directorySeededKey(keyPrefix)
  return {
    has: async (marker) => (await call('seed', () => redis.sismember(key, marker))) === 1,
    add: async (marker) => void (await call('seed', () => redis.sadd(key, marker))),
  }
}

/**
 * Seeds the store with the config file's users and clients (so a development
 * stack on Redis starts from the file), each entry once (SeedMarks).
 * An entry that already exists in the store is left alone too. Seeded users
 * keep `userIdFor(username)`, the subject the in-memory directory gives them.
 */
export async function seedWith(
  marks: SeedMarks,
  dirs: { users: UserDirectory; clients: ClientDirectory },
  file: Pick<AuthFileConfig, 'users' | 'clients'>,
): Promise<SeedResult> {
  const result: SeedResult = { users: 0, clients: 0 }
  for (const u of file.users) {
    const marker = `user:${canonicalUsername(u.username)}`
    if (await marks.has(marker)) continue
    if ((await dirs.users.findByUsername(u.username)) === null) {
      const passwordHash = u.password_hash ?? (await hashPassword(u.password!))
      const added = await dirs.users.add({ id: userIdFor(u.username), username: u.username, email: u.email, passwordHash, roles: u.roles, claims: u.claims, disabled: u.disabled })
      if (added.status === 'created') result.users++
    }
    await marks.add(marker)
  }
  for (const c of file.clients) {
    const marker = `client:${c.client_id}`
    if (await marks.has(marker)) continue
    if ((await dirs.clients.add(c)).status === 'created') result.clients++
    await marks.add(marker)
  }
  return result
}

/** seedWith on Redis, then the mark that a whole pass finished (directorySeeded). */
export async function seedDirectories(
  redis: Redis | Cluster,
  dirs: { users: UserDirectory; clients: ClientDirectory },
  file: Pick<AuthFileConfig, 'users' | 'clients'>,
  keyPrefix: string = DEFAULT_KEY_PREFIX,
): Promise<SeedResult> {
  const marks = redisSeedMarks(redis, keyPrefix)
  const result = await seedWith(marks, dirs, file)
  await marks.add(SEED_COMPLETE)
  return result
}

/** True when a complete seeding pass is recorded in the store (one SISMEMBER). */
export async function directorySeeded(redis: Redis | Cluster, keyPrefix: string = DEFAULT_KEY_PREFIX): Promise<boolean> {
  return (await call('seed', () => redis.sismember(directorySeededKey(keyPrefix), SEED_COMPLETE))) === 1
}

export interface DirectoryKeeperOptions {
  redis: Redis | Cluster
  dirs: { users: UserDirectory; clients: ClientDirectory }
  file: Pick<AuthFileConfig, 'users' | 'clients'>
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void }
  keyPrefix?: string
  /** How often to look for a lost directory without being asked (default 5 s; 0 = never). */
  intervalMs?: number
}

/**
 * Notices a Redis that came back without the directory (restarted empty, flushed) and seeds it
 * again from the config file, without a restart of the service: losing Redis may cost sessions
 * and refresh-token families, never the identities in the config file, nor the service.
 *
 * The check is one SISMEMBER, made when the connection becomes ready again (a reconnection), on
 * every readiness probe, and every `intervalMs`. Seeding is idempotent (records are created only
 * if absent, markers are set members), so replicas that notice at once may all seed. Until the
 * directory is back, check() answers false and /readyz 503.
 */
export class DirectoryKeeper {
  readonly #o: DirectoryKeeperOptions
  #seeding: Promise<void> | null = null
  #timer: NodeJS.Timeout | undefined
  readonly #onReady = (): void => void this.check().catch(() => false)

  constructor(opts: DirectoryKeeperOptions) {
    this.#o = opts
  }

  start(): void {
    this.#o.redis.on('ready', this.#onReady)
    const every = this.#o.intervalMs ?? 5000
    if (every > 0 && this.#timer === undefined) {
      this.#timer = setInterval(this.#onReady, every)
      this.#timer.unref()
    }
  }

  close(): void {
    this.#o.redis.off('ready', this.#onReady)
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** True when the directory is in the store; otherwise starts seeding it (once) and answers false. Throws StoreUnavailable. */
  async check(): Promise<boolean> {
    if (this.#seeding !== null) return false
    if (await directorySeeded(this.#o.redis, this.#o.keyPrefix)) return true
    if (this.#seeding === null) this.#seeding = this.#reseed().finally(() => (this.#seeding = null))
    return false
  }

  async #reseed(): Promise<void> {
    try {
      const seeded = await seedDirectories(this.#o.redis, this.#o.dirs, this.#o.file, this.#o.keyPrefix)
      this.#o.log.warn(
        { event: 'directory.reseeded', users: seeded.users, clients: seeded.clients },
        'the store had lost the directory (Redis restarted empty?): seeded users and clients from the config file again',
      )
    } catch (err) {
      // Tried again by the next check (reconnection, readiness probe, timer).
      this.#o.log.warn({ event: 'directory.reseed_failed', err: (err as Error).message }, 'seeding the directory again failed')
    }
  }
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
