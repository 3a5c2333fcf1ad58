import type { Cluster, Redis } from 'ioredis'
import type { AuthConfig } from '../config.js'
import { RefreshTokenCodec } from '../families/refresh-token-codec.js'
import type { FamilyPolicy } from '../families/types.js'
import { LoginGate } from '../signin/login-gate.js'
import { KNOWN_ADDRESS_TTL_MS, type LoginLimiter, type LoginLimitPolicy } from '../signin/login-limiter.js'
import { LOGIN_SESSION_TTL_MS } from '../signin/sessions.js'
import { RedisLoginSessionStore } from '../signin/redis-sessions.js'
import type { Clock } from '../store/types.js'

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

/** The login gate of a configuration, around the given limiter. */
export function loginGateFor(config: AuthConfig, limiter: LoginLimiter): LoginGate {
  const l = config.loginLimits
  return new LoginGate({ limiter, maxPerUser: l.maxAttempts, maxPerAddress: l.maxAttemptsPerAddress, delayMs: l.delayMs })
}

export function loginLimitPolicy(config: AuthConfig): LoginLimitPolicy {
  const l = config.loginLimits
  return { maxPerUser: l.maxAttempts, maxPerAddress: l.maxAttemptsPerAddress, windowMs: l.window * 1000, lockoutMs: l.lockout * 1000, knownAddressTtlMs: KNOWN_ADDRESS_TTL_MS }
}
