import { createHash, randomBytes } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'
import { type Clock } from '../store/types.js'
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
export const MAX_KNOWN_ADDRESSES = 16
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
export function addressTag(ticket: LoginTicket): string {
  return ticket.address.slice(0, 16)
}

/** Members: `<tag>|p|<id>` while pending, `<tag>|f|<id>` once failed (`tag` is '' in an address bucket). */
export function member(tag: string, state: 'p' | 'f', id: string): string {
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

export type Step =
  | { status: 'admitted'; counted: number }
  | { status: 'locked'; retryAfterMs: number; lockedNow: boolean }
  | { status: 'busy' }

/** In-process buckets (development, single replica). The same rules as the Lua scripts of redis-login-limiter.ts. */
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
