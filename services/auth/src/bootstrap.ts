import type { FastifyBaseLogger } from 'fastify'
import type { AuthConfig } from './config.js'
import { MemoryClientDirectory } from './clients.js'
import type { AuthDeps } from './deps.js'
import { generateDevKeySet, KeyRing, loadKeySetFile } from './keys.js'
import { AuthMetrics } from './metrics.js'
import { NoopRevocationPublisher, RedisRevocationPublisher } from './revocation-publisher.js'
import { RefreshTokenCodec } from './store/refresh-token-codec.js'
import { MemoryFamilyStore } from './store/memory-family-store.js'
import { RedisFamilyStore } from './store/redis-family-store.js'
import { createRedis } from './store/redis-connection.js'
import { AccessTokenIssuer } from './tokens.js'
import { MemoryUserDirectory } from './users.js'

export interface Runtime {
  deps: AuthDeps
  /** Closes what the runtime opened (Redis connections). */
  close(): Promise<void>
}

/** Wires the dependencies a configuration calls for (the one place that decides memory vs Redis). */
export async function createRuntime(config: AuthConfig, log: Pick<FastifyBaseLogger, 'warn' | 'info'>, clock: () => number = Date.now): Promise<Runtime> {
  const keys = new KeyRing(config.signingKeysFile ? await loadKeySetFile(config.signingKeysFile) : await generateDevKeySet())
  if (!config.signingKeysFile) log.warn('SIGNING_KEYS_FILE is not set: signing with a generated development key (tokens die with this process)')
  if (config.cookieSecretGenerated) log.warn('COOKIE_SECRET is not set: using a generated one (development only)')
  const codec = RefreshTokenCodec.fromSecret(config.cookieSecret)
  const policy = {
    absoluteTtlMs: config.refreshTokenTtl * 1000,
    idleTtlMs: config.refreshTokenIdleTtl * 1000,
    reuseGraceMs: config.refreshReuseGrace * 1000,
  }
  const metrics = new AuthMetrics()
  const users = await MemoryUserDirectory.fromConfig(config.file.users)
  const clients = new MemoryClientDirectory(config.file.clients)
  const tokens = new AccessTokenIssuer(config.issuer, keys, config.accessTokenTtl, clock)

  if (!config.redis) {
    log.warn('REDIS_URL is not set: refresh tokens live in this process only (development only)')
    const families = new MemoryFamilyStore({ codec, policy, clock })
    const deps: AuthDeps = { config, clock, families, users, clients, keys, tokens, metrics, revocations: new NoopRevocationPublisher(), ping: () => families.ping() }
    return { deps, close: () => families.close() }
  }

  const redis = createRedis(config.redis)
  const families = new RedisFamilyStore({ redis, codec, policy, clock })
  const deps: AuthDeps = {
    config,
    clock,
    families,
    users,
    clients,
    keys,
    tokens,
    metrics,
    revocations: new RedisRevocationPublisher(redis, clock),
    ping: () => families.ping(),
  }
  return {
    deps,
    close: async () => {
      await families.close()
      redis.disconnect()
    },
  }
}
