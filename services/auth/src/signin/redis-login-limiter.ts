import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, loginBucketKeys, type LoginBucketKeys } from '../store/key-names.js'
import { StoreUnavailable, type Clock } from '../store/types.js'
import { MAX_KNOWN_ADDRESSES, PENDING_LEASE_MS, loginTicket, addressTag, member, checkPolicy, type LoginLimitPolicy, type LoginTicket, type LoginCheck, type LoginLimiter, type Step } from './login-limiter.js'

/**
 * Check and count, atomically, on one bucket (its three keys share a hash tag).
 * KEYS[1] attempts (zset), KEYS[2] locks (hash), KEYS[3] known (zset)
 * ARGV[1] now (ms, the injected clock), ARGV[2] window (ms), ARGV[3] lockout (ms), ARGV[4] max,
 * ARGV[5] attempt id, ARGV[6] the address tag ('' in an address bucket),
 * ARGV[7] known-address TTL (ms), ARGV[8] pending lease (ms)
 * Returns {'admitted', counted before} | {'locked', retry after (ms), 1 if it began now} | {'busy'}.
 * TTLs are relative (PEXPIRE): expiry follows the injected clock, not Redis's.
 */
const ATTEMPT_SCRIPT = `
local attempts, locks, known = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lockout = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local tag = ARGV[6]
local lease = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', attempts, '-inf', string.format('%d', now - window))
local scope = '*'
if tag ~= '' then
  local seen = redis.call('ZSCORE', known, tag)
  if seen and tonumber(seen) > now - tonumber(ARGV[7]) then scope = tag end
end
local untilMs = tonumber(redis.call('HGET', locks, scope) or '0')
if untilMs > now then
  return {'locked', untilMs - now, 0}
end
local all = redis.call('ZRANGE', attempts, 0, -1, 'WITHSCORES')
local inScope = {}
local failed, pending = 0, 0
for i = 1, #all, 2 do
  local m = all[i]
  if scope == '*' or string.sub(m, 1, #scope + 1) == scope .. '|' then
    inScope[#inScope + 1] = m
    if string.find(m, '|f|', 1, true) or tonumber(all[i + 1]) <= now - lease then failed = failed + 1 else pending = pending + 1 end
  end
end
if failed >= max then
  redis.call('HSET', locks, scope, string.format('%d', now + lockout))
  redis.call('PEXPIRE', locks, string.format('%d', lockout))
  for i = 1, #inScope, 500 do
    redis.call('ZREM', attempts, unpack(inScope, i, math.min(i + 499, #inScope)))
  end
  return {'locked', lockout, 1}
end
if failed + pending >= max then
  return {'busy'}
end
redis.call('ZADD', attempts, ARGV[1], tag .. '|p|' .. ARGV[5])
redis.call('PEXPIRE', attempts, string.format('%d', window))
return {'admitted', failed + pending}
`

/**
 * A pending attempt becomes a failure (unless a lockout dropped it). KEYS[1] attempts; ARGV[1]
 * now, ARGV[2] tag, ARGV[3] id, ARGV[4] window (ms): removing the last member deletes the key, so
 * the re-created one needs its TTL again.
 */
const FAILED_SCRIPT = `
if redis.call('ZREM', KEYS[1], ARGV[2] .. '|p|' .. ARGV[3]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2] .. '|f|' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
`

/**
 * A success on a user bucket. KEYS as the attempt script; ARGV[1] now (ms), ARGV[2] the address
 * tag, ARGV[3] attempt id, ARGV[4] known-address TTL (ms), ARGV[5] how many known addresses to keep.
 */
const SUCCEEDED_SCRIPT = `
local attempts, locks, known = KEYS[1], KEYS[2], KEYS[3]
local tag = ARGV[2]
local mine = {tag .. '|p|' .. ARGV[3]}
local prefix = tag .. '|f|'
for _, m in ipairs(redis.call('ZRANGE', attempts, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then mine[#mine + 1] = m end
end
for i = 1, #mine, 500 do
  redis.call('ZREM', attempts, unpack(mine, i, math.min(i + 499, #mine)))
end
redis.call('HDEL', locks, tag)
redis.call('ZADD', known, ARGV[1], tag)
redis.call('ZREMRANGEBYSCORE', known, '-inf', string.format('%d', tonumber(ARGV[1]) - tonumber(ARGV[4])))
redis.call('ZREMRANGEBYRANK', known, 0, -1 - tonumber(ARGV[5]))
redis.call('PEXPIRE', known, ARGV[4])
return 1
`

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>
interface LimiterScripts {
  gatehouseLoginAttempt: ScriptFn
  gatehouseLoginFailed: ScriptFn
  gatehouseLoginSucceeded: ScriptFn
}

/** Buckets in Redis, shared by every replica: one EVALSHA per bucket per step. */
export class RedisLoginLimiter implements LoginLimiter {
  readonly #redis: Redis | Cluster
  readonly #scripts: LimiterScripts
  readonly #policy: LoginLimitPolicy
  readonly #clock: Clock
  readonly #prefix: string

  constructor(options: { redis: Redis | Cluster; policy: LoginLimitPolicy; clock?: Clock; keyPrefix?: string }) {
    checkPolicy(options.policy)
    this.#redis = options.redis
    this.#policy = { ...options.policy }
    this.#clock = options.clock ?? Date.now
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#redis.defineCommand('gatehouseLoginAttempt', { numberOfKeys: 3, lua: ATTEMPT_SCRIPT })
    this.#redis.defineCommand('gatehouseLoginFailed', { numberOfKeys: 1, lua: FAILED_SCRIPT })
    this.#redis.defineCommand('gatehouseLoginSucceeded', { numberOfKeys: 3, lua: SUCCEEDED_SCRIPT })
    this.#scripts = this.#redis as unknown as LimiterScripts
  }

  async attempt(username: string, address: string): Promise<LoginCheck> {
    const ticket = loginTicket(username, address)
    const now = this.#clock()
    const addressKeys = this.#keys('a', ticket)
    const byAddress = await this.#step(addressKeys, now, this.#policy.maxPerAddress, '', ticket.id)
    if (byAddress.status === 'locked') return { status: 'locked', scope: 'address', retryAfterMs: byAddress.retryAfterMs, lockedNow: byAddress.lockedNow }
    if (byAddress.status === 'busy') return { status: 'busy', scope: 'address' }
    let byUser: Step
    try {
      byUser = await this.#step(this.#keys('u', ticket), now, this.#policy.maxPerUser, addressTag(ticket), ticket.id)
    } catch (err) {
      await this.#forget(addressKeys, member('', 'p', ticket.id)).catch(() => undefined)
      throw err
    }
    if (byUser.status !== 'admitted') {
      await this.#forget(addressKeys, member('', 'p', ticket.id))
      return byUser.status === 'busy' ? { status: 'busy', scope: 'user' } : { status: 'locked', scope: 'user', retryAfterMs: byUser.retryAfterMs, lockedNow: byUser.lockedNow }
    }
    return { status: 'admitted', ticket, counted: { user: byUser.counted, address: byAddress.counted } }
  }

  async failed(ticket: LoginTicket): Promise<void> {
    const now = this.#clock()
    const window = this.#policy.windowMs
    await call('login failure', () => this.#scripts.gatehouseLoginFailed(this.#keys('a', ticket).attempts, now, '', ticket.id, window))
    await call('login failure', () => this.#scripts.gatehouseLoginFailed(this.#keys('u', ticket).attempts, now, addressTag(ticket), ticket.id, window))
  }

  async succeeded(ticket: LoginTicket): Promise<void> {
    const k = this.#keys('u', ticket)
    await this.#forget(this.#keys('a', ticket), member('', 'p', ticket.id))
    await call('login success', () =>
      this.#scripts.gatehouseLoginSucceeded(k.attempts, k.locks, k.known, this.#clock(), addressTag(ticket), ticket.id, this.#policy.knownAddressTtlMs, MAX_KNOWN_ADDRESSES),
    )
  }

  async release(ticket: LoginTicket): Promise<void> {
    await this.#forget(this.#keys('a', ticket), member('', 'p', ticket.id))
    await this.#forget(this.#keys('u', ticket), member(addressTag(ticket), 'p', ticket.id))
  }

  #keys(kind: 'u' | 'a', ticket: LoginTicket): LoginBucketKeys {
    return loginBucketKeys(kind, kind === 'u' ? ticket.user : ticket.address, this.#prefix)
  }

  async #forget(k: LoginBucketKeys, m: string): Promise<void> {
    await call('login release', () => this.#redis.zrem(k.attempts, m))
  }

  async #step(k: LoginBucketKeys, now: number, max: number, tag: string, id: string): Promise<Step> {
    const p = this.#policy
    const reply = await call('login attempt', () =>
      this.#scripts.gatehouseLoginAttempt(k.attempts, k.locks, k.known, now, p.windowMs, p.lockoutMs, max, id, tag, p.knownAddressTtlMs, PENDING_LEASE_MS),
    )
    if (!Array.isArray(reply)) throw new StoreUnavailable('redis: unexpected reply from the login attempt script')
    const [status, a, b] = reply as unknown[]
    if (status === 'admitted' && typeof a === 'number') return { status, counted: a }
    if (status === 'locked' && typeof a === 'number') return { status, retryAfterMs: a, lockedNow: b === 1 }
    if (status === 'busy') return { status }
    throw new StoreUnavailable('redis: unexpected reply from the login attempt script')
  }
}
