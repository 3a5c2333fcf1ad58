import { userInfo } from 'node:os'
import type { Cluster, Redis } from 'ioredis'
import pino from 'pino'
import { ConfigError, loggerOptions } from '@gatehouse/service-kit'
import { Admin, type AuditLog } from './admin.js'
import { loadConfig, type AuthConfig } from '../config.js'
import { keyPolicy, type KeyPolicy } from '../keys/key-lifecycle.js'
import { FileKeySetStore, RedisKeySetStore, type KeySetStore } from '../keys/key-store.js'
import type { BackchannelLogout } from '../logout/backchannel.js'
import { QueuedBackchannelLogout } from '../logout/queued-backchannel.js'
import { RedisLogoutQueue } from '../logout/redis-logout-queue.js'
import { RedisClientDirectory, RedisUserDirectory } from '../directory/redis-directory.js'
import type { ClientDirectory } from '../directory/clients.js'
import type { UserDirectory } from '../directory/users.js'
import { RedisChangeAnnouncer } from '../directory/directory-cache.js'
import { MemoryFamilyStore } from '../families/memory-family-store.js'
import { RedisFamilyStore } from '../families/redis-family-store.js'
import { MemoryLogoutQueue } from '../logout/queue.js'
import { LOGIN_SESSION_TTL_MS, MemoryLoginSessionStore } from '../signin/sessions.js'
import { createRedis, waitForRedis } from '../store/redis-connection.js'
import { StoreUnavailable } from '../store/types.js'
import { familyStoreOptions, openDatabase, redisFactorStore, redisLoginSessionStore, type Database } from '../runtime/build.js'
import { CliError, UsageError, type CliIO } from './framework.js'
import { cliAuditTrail, type CliAuditTrail } from '../audit/cli-trail.js'

/**
 * What commands need, opened on first use and closed at exit: the service's
 * configuration (the same environment, parsed by the same loadConfig), one
 * Redis connection, the PostgreSQL pool (DATABASE_URL: users, clients and
 * resources live there), and the same store classes the service uses, so the
 * CLI has no data model of its own.
 */
export class CliContext {
  readonly audit: AuditLog
  #config: AuthConfig | undefined
  #redis: Redis | Cluster | undefined
  /** Where admin actions are recorded besides the log lines (audit/cli-trail.ts). */
  readonly trail: CliAuditTrail = cliAuditTrail(this)
  #database: Database | undefined

  constructor(readonly io: CliIO) {
    // Audit events are JSON lines on stderr, through the service's redaction list (DESIGN §9).
    const level = io.env.LOG_LEVEL && ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(io.env.LOG_LEVEL) ? io.env.LOG_LEVEL : 'info'
    const logger = pino({ ...loggerOptions(level), base: { source: 'gatehouse-cli' } }, { write: (s: string) => void io.stderr.write(s) })
    this.audit = { info: (obj, msg) => logger.info(obj, msg), error: (obj, msg) => logger.error(obj, msg) }
  }

  get clock(): () => number {
    return this.io.clock ?? Date.now
  }

  /** The operator, recorded in audit events (GATEHOUSE_ACTOR, else the OS login). */
  get actor(): string {
    const given = this.io.env.GATEHOUSE_ACTOR
    if (given) return given.slice(0, 128)
    try {
      return userInfo().username
    } catch {
      return 'unknown'
    }
  }

  async config(): Promise<AuthConfig> {
    if (this.#config) return this.#config
    try {
      this.#config = await loadConfig(this.io.env)
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(err.message, 1, 'config')
      throw err
    }
    return this.#config
  }

  async redis(): Promise<Redis | Cluster> {
    if (this.#redis) return this.#redis
    const config = await this.config()
    if (!config.redis) throw new CliError('REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set: the CLI manages the live system in Redis', 1, 'config')
    // A command-line tool reports the first connection failure instead of retrying for long.
    let firstError: ((err: Error) => void) | undefined
    const failed = new Promise<never>((_, reject) => (firstError = reject))
    failed.catch(() => undefined)
    const redis = createRedis({ ...config.redis, connectionName: 'gatehouse-cli', commandTimeoutMs: 5000, onError: (err) => firstError?.(err) })
    this.#redis = redis
    try {
      await Promise.race([waitForRedis(redis, 5000), failed])
    } catch (err) {
      throw new CliError(`cannot reach Redis: ${(err as Error).message}`, 1, 'unavailable')
    } finally {
      firstError = undefined
    }
    return redis
  }

  /**
   * PostgreSQL, when DATABASE_URL is set (null otherwise). Its schema must be current (`gatehouse
   * db migrate`); changes are announced to the replicas' caches over Redis when Redis is set.
   */
  async database(): Promise<Database | null> {
    if (this.#database) return this.#database
    const config = await this.config()
    if (!config.database) return null
    const redis = config.redis ? await this.redis() : null
    try {
      this.#database = await openDatabase(config.database, {
        log: { info: () => undefined, warn: () => undefined },
        ...(redis ? { changes: new RedisChangeAnnouncer(redis) } : {}),
        waitMs: 0,
      })
    } catch (err) {
      if (err instanceof StoreUnavailable) throw new CliError(`cannot reach PostgreSQL: ${err.message}`, 1, 'unavailable')
      throw new CliError((err as Error).message, 1, 'unavailable')
    }
    return this.#database
  }

  /** Users and clients where the service keeps them: PostgreSQL (DATABASE_URL), else Redis. */
  async directories(): Promise<{ users: UserDirectory; clients: ClientDirectory }> {
    const db = await this.database()
    if (db) return db
    const redis = await this.redis()
    return { users: new RedisUserDirectory({ redis, clock: this.clock }), clients: new RedisClientDirectory({ redis, clock: this.clock }) }
  }

  async admin(): Promise<Admin> {
    const config = await this.config()
    const db = await this.database()
    const { users, clients } = await this.directories()
    const clock = this.clock
    const common = {
      users,
      clients,
      clock,
      accessTokenTtl: config.accessTokenTtl,
      resources: db ? await db.resources.all() : config.file.resources,
      log: this.audit,
      trail: await this.trail.open(),
      actor: this.actor,
    }
    if (db && !config.redis) {
      // PostgreSQL without Redis (development): refresh families and login sessions live in the
      // running service's memory, out of the CLI's reach; there is none here to end.
      const families = new MemoryFamilyStore(familyStoreOptions(config, clock))
      const sessions = new MemoryLoginSessionStore({ ttlMs: LOGIN_SESSION_TTL_MS, clock })
      const backchannel = new QueuedBackchannelLogout({ queue: new MemoryLogoutQueue({ clock }), clients, clock, log: { info: this.audit.info, warn: this.audit.info } })
      return new Admin({ ...common, families, sessions, backchannel, factors: db.factors })
    }
    const redis = await this.redis()
    return new Admin({
      ...common,
      families: new RedisFamilyStore({
        redis,
        // The same options as the service's store (runtime/build.ts). The codec only mints and
        // parses tokens, which the CLI never does; the families it lists and revokes are found by id.
        ...familyStoreOptions(config, clock),
        ownsConnection: false,
      }),
      sessions: redisLoginSessionStore(redis, clock),
      // Second factors where the service keeps them: PostgreSQL with DATABASE_URL, else Redis.
      factors: db?.factors ?? redisFactorStore(redis),
      backchannel: this.#backchannel(redis, clients),
    })
  }

  /** Back-channel logout for commands that end sessions (OIDC Back-Channel Logout, DESIGN §10.1). */
  async backchannel(): Promise<BackchannelLogout> {
    const redis = await this.redis()
    return this.#backchannel(redis, (await this.directories()).clients)
  }

  /** Enqueues only: the running service's worker delivers (the CLI exits before any retry). */
  #backchannel(redis: Redis | Cluster, clients: ClientDirectory): BackchannelLogout {
    const clock = this.clock
    return new QueuedBackchannelLogout({ queue: new RedisLogoutQueue({ redis, clock }), clients, clock, log: { info: this.audit.info, warn: this.audit.info } })
  }

  /**
   * The key set a `keys` command works on: `--file`, else where the service
   * keeps it (SIGNING_KEYS_STORE=redis, else SIGNING_KEYS_FILE).
   */
  async keyStore(file: string | undefined): Promise<{ store: KeySetStore; policy: KeyPolicy }> {
    const config = await this.config()
    const policy = keyPolicy(config)
    if (file !== undefined) return { store: new FileKeySetStore(file), policy }
    if (config.signingKeysStore === 'redis') {
      return { store: new RedisKeySetStore({ redis: await this.redis(), secret: config.signingKeysEncryptionSecret! }), policy }
    }
    if (config.signingKeysFile !== undefined) return { store: new FileKeySetStore(config.signingKeysFile), policy }
    throw new UsageError('no key set to work on: pass --file, or set SIGNING_KEYS_STORE=redis or SIGNING_KEYS_FILE')
  }

  async close(): Promise<void> {
    await this.trail.close()
    const db = this.#database
    this.#database = undefined
    await db?.close()
    const redis = this.#redis
    this.#redis = undefined
    if (redis) await redis.quit().catch(() => redis.disconnect())
  }
}
