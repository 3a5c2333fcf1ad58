import type { Cluster, Redis } from 'ioredis'
import type { AuthConfig } from '../config.js'
import type { Clock } from '../store/types.js'
import { deviceGuessKeyPrefix } from '../store/key-names.js'
import { MemoryLoginLimiter, type LoginLimiter, type LoginLimitPolicy } from '../signin/login-limiter.js'
import { RedisLoginLimiter } from '../signin/redis-login-limiter.js'
import { MemoryDeviceCodeStore, type DeviceCodeStore } from './device-codes.js'
import { RedisDeviceCodeStore } from './redis-device-codes.js'

/**
 * What the device authorization grant needs at run time (RFC 8628): its requests, and the limits
 * on guessing user codes at the verification page (§5.1: "the authorization server MUST use
 * mechanisms to prevent" brute forcing of the user code).
 *
 * The guessing limits are a login limiter of their own (signin/login-limiter.ts, its own keys):
 * the "username" bucket is the signed-in user's login session, the address bucket the client
 * address, with the LOGIN_* numbers: at most LOGIN_MAX_ATTEMPTS wrong codes per session and
 * LOGIN_MAX_ATTEMPTS_PER_ADDRESS per address in LOGIN_WINDOW, then LOGIN_LOCKOUT. A right code
 * takes its attempt back and forgets nothing (a wrong guess stays counted for its window).
 */
export interface DeviceFlow {
  codes: DeviceCodeStore
  guesses: LoginLimiter
}

function options(config: AuthConfig, clock: Clock) {
  return { ttlMs: config.device.codeTtl * 1000, intervalSeconds: config.device.pollInterval, clock }
}

export function memoryDeviceFlow(config: AuthConfig, policy: LoginLimitPolicy, clock: Clock): DeviceFlow {
  return { codes: new MemoryDeviceCodeStore(options(config, clock)), guesses: new MemoryLoginLimiter({ policy, clock }) }
}

export function redisDeviceFlow(config: AuthConfig, policy: LoginLimitPolicy, redis: Redis | Cluster, clock: Clock): DeviceFlow {
  return {
    codes: new RedisDeviceCodeStore({ ...options(config, clock), redis }),
    guesses: new RedisLoginLimiter({ redis, policy, clock, keyPrefix: deviceGuessKeyPrefix() }),
  }
}
