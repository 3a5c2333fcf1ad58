import type { FastifyBaseLogger } from 'fastify'
import type { AuthConfig } from '../config.js'
import { MemoryClientDirectory, type ClientDirectory } from '../directory/clients.js'
import type { AuthDeps } from './deps.js'
import { openSigningKeys } from '../keys/key-manager.js'
import { keyPolicy } from '../keys/key-lifecycle.js'
import { DirectoryKeeper, openRedisDirectories } from '../directory/seed.js'
import { AuthMetrics, signingKeyFigures } from './metrics.js'
import { NoopRevocationPublisher, RedisRevocationPublisher } from '../families/revocation-publisher.js'
import { MemoryFamilyStore } from '../families/memory-family-store.js'
import { RedisFamilyStore } from '../families/redis-family-store.js'
import { shouldLogAnnouncement } from '../families/revocation-outbox.js'
import { createRedis, waitForRedis } from '../store/redis-connection.js'
import { AccessTokenIssuer } from '../tokens/access-tokens.js'
import { MemoryFactorStore } from '../mfa/factors.js'
import { MemoryUserDirectory, type UserDirectory } from '../directory/users.js'
import { MemoryAuthorizationCodeStore } from '../authorize/codes.js'
import { RedisAuthorizationCodeStore } from '../authorize/redis-codes.js'
import { MemoryPushedRequestStore } from '../par/request-store.js'
import { RedisPushedRequestStore } from '../par/redis-request-store.js'
import { MemoryReplayStore } from '../directory/replay.js'
import { RedisReplayStore } from '../directory/redis-replay.js'
import { LOGIN_SESSION_TTL_MS, MemoryLoginSessionStore } from '../signin/sessions.js'
import { backchannelLogoutFor } from '../logout/runtime.js'
import { DirectoryCache, RedisChangeAnnouncer } from '../directory/directory-cache.js'
import { MemoryLoginLimiter } from '../signin/login-limiter.js'
import { RedisLoginLimiter } from '../signin/redis-login-limiter.js'
import { openAuditTrail } from '../audit/open.js'
import { familyStoreOptions, loginGateFor, loginLimitPolicy, openDatabase, redisFactorStore, redisLoginSessionStore, type Database } from './build.js'
import { fileResources } from '../directory/resources.js'
import { MemoryDpopReplayCache } from '@gatehouse/verifier'
import { createDpopDeps } from '../dpop/proofs.js'
import { RedisDpopReplayCache } from '../dpop/redis-replay.js'
import { memoryDeviceFlow, redisDeviceFlow } from '../device/device-flow.js'

export interface Runtime {
  deps: AuthDeps
  /** Closes what the runtime opened (Redis connections, the database pool). */
  close(): Promise<void>
}

/** Wires the dependencies a configuration calls for (the one place that decides memory vs Redis). */
export async function createRuntime(config: AuthConfig, log: Pick<FastifyBaseLogger, 'warn' | 'info'>, clock: () => number = Date.now): Promise<Runtime> {
  // Key set from Redis or the file, re-read without restarts (key-manager.ts, DESIGN §7).
  const signing = await openSigningKeys(config, log, clock)
  const keys = signing.ring
  signing.manager?.start()
  if (!signing.manager) log.warn('SIGNING_KEYS_FILE is not set: signing with a generated development key (tokens die with this process)')
  if (config.cookieSecretGenerated) log.warn('COOKIE_SECRET is not set: using a generated one (development only)')
  if (config.refreshTokenSecretFromCookie) log.warn('REFRESH_TOKEN_SECRET is not set: refresh tokens are keyed from COOKIE_SECRET (development only)')
  // Codec, policy and access-token lifetime, as the CLI builds them (build.ts).
  const familyOptions = familyStoreOptions(config, clock)
  const metrics = new AuthMetrics()
  // Key ages and states for the no-successor alert (infra/observability/alerts.yml).
  metrics.watchSigningKeys(() => signingKeyFigures(keys, clock(), keyPolicy(config)))
  const tokens = new AccessTokenIssuer(config.issuer, keys, config.accessTokenTtl, clock)
  // PostgreSQL with DATABASE_URL, else memory; closed last, after the requests that record to it.
  const audit = openAuditTrail(config, log, clock, metrics)

  if (!config.redis) {
    log.warn('REDIS_URL is not set: refresh tokens live in this process only (development only)')
    // With DATABASE_URL, users, clients and resources live in PostgreSQL (no other replica to tell).
    const db = config.database ? await openDatabase(config.database, { log, applyMigrations: true, seed: config.file }).catch(async (err: unknown) => {
      await signing.close()
      await audit.close()
      throw err
    }) : null
    // In one process nobody else listens for a revocation. Looked up when a revocation happens, so that whatever `deps.revocations` holds then hears it.
    const families = new MemoryFamilyStore({ ...familyOptions, announce: (sid, exp) => void deps.revocations.publish(sid, exp) })
    const users = db?.users ?? (await MemoryUserDirectory.fromConfig(config.file.users))
    const clients = db?.clients ?? new MemoryClientDirectory(config.file.clients)
    const backchannel = backchannelLogoutFor({ config, clients, keys, clock, log, metrics })
    const deps: AuthDeps = {
      config, clock, families, users, clients, keys, tokens, metrics, revocations: new NoopRevocationPublisher(), audit, ping: () => families.ping(),
      resources: db?.resources ?? fileResources(config.file.resources),
      ...(db ? { pingDatabase: () => db.ping() } : {}),
      sessions: new MemoryLoginSessionStore({ ttlMs: LOGIN_SESSION_TTL_MS, clock }),
      codes: new MemoryAuthorizationCodeStore({ clock }),
      pushedRequests: new MemoryPushedRequestStore({ lifetimeMs: config.parTtl * 1000, clock }),
      assertionReplay: new MemoryReplayStore({ clock }),
      dpop: createDpopDeps({ cookieSecret: config.cookieSecret, requireNonce: config.dpopRequireNonce, clock, replay: new MemoryDpopReplayCache(clock) }),
      loginGate: loginGateFor(config, new MemoryLoginLimiter({ policy: loginLimitPolicy(config), clock })),
      backchannel: backchannel.logout,
      device: memoryDeviceFlow(config, loginLimitPolicy(config), clock),
      // Second factors where the users are: PostgreSQL with DATABASE_URL, else this process.
      factors: db?.factors ?? new MemoryFactorStore({ clock }),
    }
    return {
      deps,
      close: async () => {
        await backchannel.worker.stop()
        await signing.close()
        await families.close()
        await audit.close()
        await db?.close()
      },
    }
  }

  const redis = createRedis(config.redis)
  // Users and clients live in PostgreSQL (DATABASE_URL), else in Redis; seeded once from the config file.
  const opened: Database | { users: UserDirectory; clients: ClientDirectory } = await (
    config.database
      ? openDatabase(config.database, { log, applyMigrations: true, seed: config.file, changes: new RedisChangeAnnouncer(redis) })
      : openRedisDirectories(redis, config.file, log, clock)
  ).catch((err: unknown) => {
    redis.disconnect()
    void signing.close()
    void audit.close()
    throw err
  })
  const { users, clients } = opened
  const database = 'pool' in opened ? opened : null
  // The store announces each revocation in the script that revokes it (issue 20).
  const families = new RedisFamilyStore({
    redis, ...familyOptions,
    onAnnouncement: (e) => {
      metrics.revocationAnnouncements.inc({ outcome: e.kind })
      if (!shouldLogAnnouncement(e)) return
      const fields = { event: `revocation.announcement_${e.kind}`, family_id: e.sid, attempts: e.attempts, err: e.error }
      if (e.kind === 'delivered') log.info(fields, 'revocation announcement written after a retry')
      else log.warn(fields, e.kind === 'failed' ? 'revocation announcement failed; retrying' : 'revocation announcement dropped')
    },
  })
  // Background work (the directory check, the back-channel logout worker) runs on a connection of
  // its own, so the request path's connection carries requests only: a rotation is one EVALSHA on
  // it (bench/scenarios/refresh.ts), and a slow poll never queues ahead of a request.
  const background = createRedis({ ...config.redis, connectionName: 'gatehouse-background' })
  await waitForRedis(background, 10_000).catch((err: unknown) => {
    background.disconnect()
    redis.disconnect()
    void signing.close()
    void audit.close()
    void database?.close()
    throw err
  })
  // Seeds the directory again should Redis come back without it (seed.ts).
  // (With PostgreSQL the directory does not live in Redis: nothing to seed again.)
  const keeper = database ? null : new DirectoryKeeper({ redis: background, dirs: { users, clients }, file: config.file, log })
  keeper?.start()
  // Clients and users by id, copied in this process so that /token reads no record from Redis per
  // request (a rotation is one round trip), kept exact by announcements (directory-cache.ts).
  const directory = new DirectoryCache({ redis, clock })
  directory.start()
  const backchannel = backchannelLogoutFor({ config, clients: directory.clients(clients), keys, clock, log, metrics, redis: background })
  const deps: AuthDeps = {
    config,
    clock,
    families,
    users: directory.users(users),
    clients: directory.clients(clients),
    keys,
    tokens,
    metrics,
    audit,
    revocations: new RedisRevocationPublisher(redis, clock),
    ping: () => families.ping(),
    resources: database?.resources ?? fileResources(config.file.resources),
    ...(keeper ? { directoryReady: () => keeper.check() } : {}),
    ...(database ? { pingDatabase: () => database.ping() } : {}),
    // Same connection as the families (the families store closes it).
    sessions: redisLoginSessionStore(redis, clock),
    codes: new RedisAuthorizationCodeStore({ redis, clock }),
    pushedRequests: new RedisPushedRequestStore({ redis, lifetimeMs: config.parTtl * 1000, clock }),
    assertionReplay: new RedisReplayStore({ redis, clock }),
    // Every replica refuses a proof any of them accepted (RFC 9449 §11.1).
    dpop: createDpopDeps({ cookieSecret: config.cookieSecret, requireNonce: config.dpopRequireNonce, clock, replay: new RedisDpopReplayCache({ redis, clock }) }),
    loginGate: loginGateFor(config, new RedisLoginLimiter({ redis, policy: loginLimitPolicy(config), clock })),
    backchannel: backchannel.logout,
    device: redisDeviceFlow(config, loginLimitPolicy(config), redis, clock),
    // Second factors: PostgreSQL with DATABASE_URL, else Redis (durable: no TTL; mfa/redis-factors.ts).
    factors: database?.factors ?? redisFactorStore(redis),
  }
  return {
    deps,
    close: async () => {
      await backchannel.worker.stop()
      keeper?.close()
      await directory.close()
      await signing.close()
      await families.close()
      await database?.close()
      redis.disconnect()
      background.disconnect()
      await audit.close()
    },
  }
}
