import type { Cluster, Redis } from 'ioredis'
import type { AuthConfig, DatabaseSettings } from '../config.js'
import { migrateDatabase, pendingMigrations } from '../database/migrate.js'
import { pgCall, redactUrls } from '../database/pg-call.js'
import { createPool, type Pool } from '../database/pool.js'
import type { AuthFileConfig } from '../directory/config-file.js'
import type { ChangeAnnouncer } from '../directory/directory-cache.js'
import { PgClientDirectory, PgUserDirectory, pgSeedMarks } from '../directory/pg-directory.js'
import { PgResources } from '../directory/pg-resources.js'
import { seedWith } from '../directory/seed.js'
import { RefreshTokenCodec } from '../families/refresh-token-codec.js'
import type { FamilyPolicy } from '../families/types.js'
import { PgFactorStore } from '../mfa/pg-factors.js'
import { RedisFactorStore } from '../mfa/redis-factors.js'
import { LoginGate } from '../signin/login-gate.js'
import { KNOWN_ADDRESS_TTL_MS, type LoginLimiter, type LoginLimitPolicy } from '../signin/login-limiter.js'
import { LOGIN_SESSION_TTL_MS } from '../signin/sessions.js'
import { RedisLoginSessionStore } from '../signin/redis-sessions.js'
import { StoreUnavailable, type Clock } from '../store/types.js'

/**
 * What the server (bootstrap.ts) and the CLI (cli/context.ts) both build from a configuration,
 * built here once so that the two read the configuration the same way.
 */

/** The refresh-family lifetimes of a configuration (DESIGN §5). */
export function familyPolicy(config: AuthConfig): FamilyPolicy {
  return {
    absoluteTtlMs: config.refreshTokenTtl * 1000,
    idleTtlMs: config.refreshTokenIdleTtl * 1000,
    reuseGraceMs: config.refreshReuseGrace * 1000,
  }
}

/** The options every family store takes, memory or Redis: codec, policy, clock, access-token lifetime. */
export function familyStoreOptions(config: AuthConfig, clock: Clock): { codec: RefreshTokenCodec; policy: FamilyPolicy; clock: Clock; accessTokenTtlS: number } {
  return {
    codec: RefreshTokenCodec.fromSecrets(config.refreshTokenSecrets),
    policy: familyPolicy(config),
    clock,
    // The store announces what it revokes (DESIGN §6), with this lifetime.
    accessTokenTtlS: config.accessTokenTtl,
  }
}

/** Login sessions in Redis, on the given connection (which the caller closes). */
export function redisLoginSessionStore(redis: Redis | Cluster, clock: Clock): RedisLoginSessionStore {
  return new RedisLoginSessionStore({ redis, ttlMs: LOGIN_SESSION_TTL_MS, clock })
}

/** Second factors in Redis (without DATABASE_URL), on the given connection (which the caller closes). */
export function redisFactorStore(redis: Redis | Cluster): RedisFactorStore {
  return new RedisFactorStore({ redis })
}

/** The login gate of a configuration, around the given limiter. */
export function loginGateFor(config: AuthConfig, limiter: LoginLimiter): LoginGate {
  const l = config.loginLimits
  return new LoginGate({ limiter, maxPerUser: l.maxAttempts, maxPerAddress: l.maxAttemptsPerAddress, delayMs: l.delayMs })
}

export function loginLimitPolicy(config: AuthConfig): LoginLimitPolicy {
  const l = config.loginLimits
  return { maxPerUser: l.maxAttempts, maxPerAddress: l.maxAttemptsPerAddress, windowMs: l.window * 1000, lockoutMs: l.lockout * 1000, knownAddressTtlMs: KNOWN_ADDRESS_TTL_MS }
}

/** PostgreSQL's users, clients, resources (DESIGN §10.2) and second factors (§10.5), on one bounded pool. */
export interface Database {
  pool: Pool
  users: PgUserDirectory
  clients: PgClientDirectory
  resources: PgResources
  /** Deleted with their user (ON DELETE CASCADE). */
  factors: PgFactorStore
  /** Resolves when the database answers; throws StoreUnavailable otherwise (/readyz). */
  ping(): Promise<void>
  close(): Promise<void>
}

export interface OpenDatabaseOptions {
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void }
  /** Tells every replica's directory cache of a change (with Redis). */
  changes?: ChangeAnnouncer
  /** Apply pending migrations when DATABASE_MIGRATE=1 (the service; the CLI only checks). */
  applyMigrations?: boolean
  /** Seed these config-file entries, each once (the service at start). */
  seed?: Pick<AuthFileConfig, 'users' | 'clients' | 'resources'>
  /** How long to wait for a database that does not answer yet (default 10 s). */
  waitMs?: number
}

/**
 * Opens the pool, brings the schema up to date (DATABASE_MIGRATE=1) or refuses an outdated one,
 * seeds the config file's entries and loads the resources. A database that does not answer yet
 * (started together with the service) is waited for, within `waitMs`.
 */
export async function openDatabase(settings: DatabaseSettings, o: OpenDatabaseOptions): Promise<Database> {
  // An idle connection broken by a server restart is logged (without the URL), never a crash.
  const pool = createPool(settings, (err) => o.log.warn({ event: 'database.connection_lost', err: redactUrls(err.message) }, 'an idle PostgreSQL connection failed'))
  const users = new PgUserDirectory({ pool, ...(o.changes ? { changes: o.changes } : {}) })
  const clients = new PgClientDirectory({ pool, ...(o.changes ? { changes: o.changes } : {}) })
  const resources = new PgResources({ pool, log: o.log })
  try {
    if (o.applyMigrations === true && settings.migrate) {
      await migrateDatabase(settings.url, { log: (line) => o.log.info({ event: 'database.migration', migration: line }, 'database migration') })
    }
    const deadline = Date.now() + (o.waitMs ?? 10_000)
    for (;;) {
      try {
        const pending = await pendingMigrations(pool)
        if (pending.length > 0) {
          throw new DatabaseSchemaError(`the database schema is behind this version (pending migrations: ${pending.join(', ')}): run \`gatehouse db migrate\`, or start with DATABASE_MIGRATE=1`)
        }
        if (o.seed !== undefined) {
          const marks = pgSeedMarks(pool)
          const seeded = await seedWith(marks, { users, clients }, o.seed)
          const added = await resources.seed(o.seed.resources, marks)
          if (seeded.users + seeded.clients + added > 0) o.log.info({ event: 'directory.seeded', users: seeded.users, clients: seeded.clients, resources: added }, 'seeded the database from the config file')
        }
        await resources.load()
        break
      } catch (err) {
        if (!(err instanceof StoreUnavailable) || Date.now() > deadline) throw err
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  } catch (err) {
    await pool.end().catch(() => undefined)
    throw err
  }
  resources.start()
  return {
    pool,
    users,
    clients,
    resources,
    factors: new PgFactorStore({ pool }),
    ping: async () => void (await pgCall('ping', () => pool.query('SELECT 1'))),
    close: async () => {
      resources.close()
      await pool.end().catch(() => undefined)
    },
  }
}

/** The database's schema is older than this version's (migrations pending). */
export class DatabaseSchemaError extends Error {
  override name = 'DatabaseSchemaError'
}
