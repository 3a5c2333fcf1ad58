import { createHash, randomBytes } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'
import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, loginBucketKeys, type LoginBucketKeys } from '../store/key-names.js'
import { StoreUnavailable, type Clock } from '../store/types.js'
import { canonicalUsername } from '../directory/users.js'

/**
 * Login attempt limits (DESIGN §8: "login attempts limited per user and per address (Redis
 * counters) with a generic error"; OWASP Authentication Cheat Sheet, "Protect against automated
 * attacks"). Two kinds of bucket, each a sliding window of attempts:
 *
 *  - per client address (IPv6 by its /64, which one host controls entirely): spraying one
 *    password over many usernames, or many passwords over many, from one place;
 *  - per username (whether or not it exists, so a lockout reveals nothing): a distributed guess
 *    at one account.
 *
 * An attempt is recorded as pending when it is admitted, before its password is checked, in the
 * same atomic step as the check (one Lua script per bucket); then it becomes a failure, or a
 * success takes it back. While failures plus pending attempts fill a bucket, further attempts are
 * `busy` (the caller waits and asks again): so a burst of parallel guesses cannot slip past the
 * check before the first failure is recorded, yet parallel logins with the right password are
 * only queued, never refused. When `max` failures are in the window, the next attempt starts a
 * lockout of `lockoutMs` and is refused; the failures the lockout paid for are dropped. Attempts
 * refused during a lockout are not counted, so hammering a locked account does not prolong its
 * lockout: every lockout ends.
 *
 * Keeping the real user in: a successful login from an address (a) forgets that username's
 * failures from that address only — an attacker's failures from elsewhere stay counted, so the
 * user's own logins never give the attacker a fresh budget — and (b) makes the address "known"
 * for the username for `knownAddressTtlMs`. A known address is exempt from the username's
 * everyone-lockout and has a budget (and lockout) of its own instead. So an attacker elsewhere can
 * lock the account for strangers, but never for the addresses its owner signs in from; an attacker
 * at such an address has that address's own `max` attempts per window, and the per-address bucket
 * still applies to everyone.
 */
export interface LoginLimitPolicy {
  /** Failures per username in the window (LOGIN_MAX_ATTEMPTS). */
  maxPerUser: number
  /** Failures per client address in the window (LOGIN_MAX_ATTEMPTS_PER_ADDRESS). */
  maxPerAddress: number
  /** The sliding window (LOGIN_WINDOW), ms. */
  windowMs: number
  /** How long a lockout lasts (LOGIN_LOCKOUT), ms. */
  lockoutMs: number
  /** How long a successful login keeps its address exempt from the username's lockout, ms. */
  knownAddressTtlMs: number
}

export const KNOWN_ADDRESS_TTL_MS = 30 * 24 * 3600 * 1000
/** A username remembers at most this many known addresses (the most recent). */
const MAX_KNOWN_ADDRESSES = 16
/**
 * A pending attempt older than this counts as a failure: its replica died between the check and
 * the verdict. Longer than any delay plus a KDF run.
 */
export const PENDING_LEASE_MS = 30_000

/** An admitted attempt: hand it back with `failed`, `succeeded` or `release`. */
export interface LoginTicket {
  readonly user: string
  readonly address: string
  readonly id: string
}

export type LoginCheck =
  /** Admitted and pending; `counted` is what each bucket held before it (for the progressive delay). */
  | { status: 'admitted'; ticket: LoginTicket; counted: { user: number; address: number } }
  /** Refused without looking at the password: a lockout is in force (`lockedNow`: it has just begun). */
  | { status: 'locked'; scope: 'user' | 'address'; retryAfterMs: number; lockedNow: boolean }
  /** Not counted: the bucket is full of pending attempts; ask again once they are decided. */
  | { status: 'busy'; scope: 'user' | 'address' }

/** Outcomes are values; implementations throw only StoreUnavailable. */
export interface LoginLimiter {
  /** Checks both buckets and, when admitted, records the attempt as pending in both. */
  attempt(username: string, address: string): Promise<LoginCheck>
  /** The password was wrong: the pending attempt becomes a failure in both buckets. */
  failed(ticket: LoginTicket): Promise<void>
  /** The password was right: take the attempt back, forget this address's failures for the user, remember the address. */
  succeeded(ticket: LoginTicket): Promise<void>
  /** The password was never checked (the attempt was throttled, or the server failed): take it back. */
  release(ticket: LoginTicket): Promise<void>
}

/** What bucket an address falls in: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64 prefix. */
export function addressBucket(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!
  if (isIPv4(address)) return address
  if (!isIPv6(address)) return address
  const [head = '', tail = ''] = address.split('%')[0]!.toLowerCase().split('::')
  const left = head === '' ? [] : head.split(':')
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const groups = address.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`
}

/** A short digest naming a bucket or an address tag: no username or address appears in a key. */
function digest(kind: string, value: string, length = 22): string {
  return createHash('sha256').update(kind).update('\0').update(value).digest('base64url').slice(0, length)
}

export function loginTicket(username: string, address: string): LoginTicket {
  return {
    user: digest('user', canonicalUsername(username)),
    address: digest('address', addressBucket(address)),
    id: randomBytes(9).toString('base64url'),
  }
}

/** The user bucket tags each attempt with its address, so a success can forget that address's failures. */
function addressTag(ticket: LoginTicket): string {
  return ticket.address.slice(0, 16)
}

/** Members: `<tag>|p|<id>` while pending, `<tag>|f|<id>` once failed (`tag` is '' in an address bucket). */
function member(tag: string, state: 'p' | 'f', id: string): string {
  return `${tag}|${state}|${id}`
}

export function checkPolicy(policy: LoginLimitPolicy): void {
  for (const [name, v] of Object.entries(policy)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`login limit ${name} must be a positive integer`)
  }
}

// --- memory --------------------------------------------------------------------------------------

interface MemoryBucket {
  attempts: Map<string, number>
  locks: Map<string, number>
  known: Map<string, number>
}

type Step =
  | { status: 'admitted'; counted: number }
  | { status: 'locked'; retryAfterMs: number; lockedNow: boolean }
  | { status: 'busy' }

/** In-process buckets (development, single replica). The same rules as the Lua scripts below. */
export class MemoryLoginLimiter implements LoginLimiter {
  readonly #policy: LoginLimitPolicy
  readonly #clock: Clock
  readonly #buckets = new Map<string, MemoryBucket>()
  #lastSweep = 0
  #sweepAt = 10_000

  constructor(options: { policy: LoginLimitPolicy; clock?: Clock }) {
    checkPolicy(options.policy)
    this.#policy = { ...options.policy }
    this.#clock = options.clock ?? Date.now
  }

  async attempt(username: string, address: string): Promise<LoginCheck> {
    const ticket = loginTicket(username, address)
    const now = this.#clock()
    this.#sweep(now)
    const byAddress = this.#step(this.#bucket(`a:${ticket.address}`), now, this.#policy.maxPerAddress, '', ticket.id)
    if (byAddress.status === 'locked') return { status: 'locked', scope: 'address', retryAfterMs: byAddress.retryAfterMs, lockedNow: byAddress.lockedNow }
    if (byAddress.status === 'busy') return { status: 'busy', scope: 'address' }
    const byUser = this.#step(this.#bucket(`u:${ticket.user}`), now, this.#policy.maxPerUser, addressTag(ticket), ticket.id)
    if (byUser.status !== 'admitted') {
      this.#bucket(`a:${ticket.address}`).attempts.delete(member('', 'p', ticket.id))
      return byUser.status === 'busy' ? { status: 'busy', scope: 'user' } : { status: 'locked', scope: 'user', retryAfterMs: byUser.retryAfterMs, lockedNow: byUser.lockedNow }
    }
    return { status: 'admitted', ticket, counted: { user: byUser.counted, address: byAddress.counted } }
  }

  async failed(ticket: LoginTicket): Promise<void> {
    const now = this.#clock()
    for (const [name, tag] of [[`a:${ticket.address}`, ''], [`u:${ticket.user}`, addressTag(ticket)]] as const) {
      const b = this.#bucket(name)
      if (b.attempts.delete(member(tag, 'p', ticket.id))) b.attempts.set(member(tag, 'f', ticket.id), now)
    }
  }

  async succeeded(ticket: LoginTicket): Promise<void> {
    const now = this.#clock()
    this.#bucket(`a:${ticket.address}`).attempts.delete(member('', 'p', ticket.id))
    const tag = addressTag(ticket)
    const b = this.#bucket(`u:${ticket.user}`)
    b.attempts.delete(member(tag, 'p', ticket.id))
    for (const m of b.attempts.keys()) if (m.startsWith(`${tag}|f|`)) b.attempts.delete(m)
    b.locks.delete(tag)
    b.known.set(tag, now)
    for (const [k, at] of b.known) if (at <= now - this.#policy.knownAddressTtlMs) b.known.delete(k)
    if (b.known.size > MAX_KNOWN_ADDRESSES) {
      b.known = new Map([...b.known].sort((x, y) => y[1] - x[1]).slice(0, MAX_KNOWN_ADDRESSES))
    }
  }

  async release(ticket: LoginTicket): Promise<void> {
    this.#bucket(`a:${ticket.address}`).attempts.delete(member('', 'p', ticket.id))
    this.#bucket(`u:${ticket.user}`).attempts.delete(member(addressTag(ticket), 'p', ticket.id))
  }

  #bucket(name: string): MemoryBucket {
    let b = this.#buckets.get(name)
    if (b === undefined) {
      b = { attempts: new Map(), locks: new Map(), known: new Map() }
      this.#buckets.set(name, b)
    }
    return b
  }

  #step(b: MemoryBucket, now: number, max: number, tag: string, id: string): Step {
    const p = this.#policy
    for (const [m, at] of b.attempts) if (at <= now - p.windowMs) b.attempts.delete(m)
    const knownAt = tag === '' ? undefined : b.known.get(tag)
    const scope = knownAt !== undefined && knownAt > now - p.knownAddressTtlMs ? tag : '*'
    const lockedUntil = b.locks.get(scope)
    if (lockedUntil !== undefined && lockedUntil > now) return { status: 'locked', retryAfterMs: lockedUntil - now, lockedNow: false }
    let failed = 0
    let pending = 0
    const inScope: string[] = []
    for (const [m, at] of b.attempts) {
      if (scope !== '*' && !m.startsWith(`${scope}|`)) continue
      inScope.push(m)
      if (m.includes('|f|') || at <= now - PENDING_LEASE_MS) failed++
      else pending++
    }
    if (failed >= max) {
      b.locks.set(scope, now + p.lockoutMs)
      for (const m of inScope) b.attempts.delete(m)
      return { status: 'locked', retryAfterMs: p.lockoutMs, lockedNow: true }
    }
    if (failed + pending >= max) return { status: 'busy' }
    b.attempts.set(member(tag, 'p', id), now)
    return { status: 'admitted', counted: failed + pending }
  }

  /** Drops buckets with nothing left in force, so memory follows live attackers, not history. */
  #sweep(now: number): void {
    if (now - this.#lastSweep < 60_000 && this.#buckets.size < this.#sweepAt) return
    this.#lastSweep = now
    const p = this.#policy
    for (const [name, b] of this.#buckets) {
      const live =
        [...b.attempts.values()].some((at) => at > now - p.windowMs) ||
        [...b.locks.values()].some((until) => until > now) ||
        [...b.known.values()].some((at) => at > now - p.knownAddressTtlMs)
      if (!live) this.#buckets.delete(name)
    }
    // Sweep again by size only once the live set has doubled: amortised O(1) per attempt.
    this.#sweepAt = Math.max(10_000, this.#buckets.size * 2)
  }

  /** How many buckets are held (for tests of the memory bound). */
  get size(): number {
    return this.#buckets.size
  }
}

// --- Redis ---------------------------------------------------------------------------------------

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
