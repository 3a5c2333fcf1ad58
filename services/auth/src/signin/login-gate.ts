import type { FastifyBaseLogger } from 'fastify'
import type { LoginLimiter, LoginTicket } from './login-limiter.js'
import type { AuthMetrics } from '../runtime/metrics.js'
import { hashPassword, verifyPassword } from '../directory/passwords.js'
import { needsRehash } from '../directory/password-hashes.js'
import { authenticateUser, findLogin, type User, type UserDirectory } from '../directory/users.js'
import { audit, type AuditTrail } from '../audit/trail.js'

/**
 * Every password check of the service goes through here (the password grant and POST /login):
 * the attempt limiter first, then a progressive delay, then the KDF. One generic outcome for the
 * caller whatever the reason (DESIGN §3: the answer must not tell a locked account, an unknown
 * user and a wrong password apart), with the reason only in the audit log and the metrics.
 *
 * The delay: the first half of a bucket's allowed attempts are free; from then on each attempt
 * waits `delayMs`, doubling per counted attempt, at most MAX_DELAY_MS, before its password is
 * checked. An attempt that finds its bucket full of undecided ones (`busy`: a burst in parallel)
 * waits a little and asks again, a few times. Waiting is a timer (the event loop stays free), and
 * at most `maxDelayed` requests wait at once in this process: beyond that, or once a busy attempt
 * has asked often enough, the answer is the generic failure at once, without checking the
 * password and without counting it, so a flood of guesses can neither pile up open requests nor
 * make the server run the KDF for it. During a lockout the answer is also immediate, with no KDF
 * (a locked state is equally true of usernames that do not exist, so the faster answer reveals
 * nothing about existence).
 */
export const MAX_DELAY_MS = 5000
/** A busy attempt asks again after 25 ms, doubling, this many times (about 3 s in all). */
const BUSY_ROUNDS = 7
const BUSY_FIRST_WAIT_MS = 25

export type LoginOutcome = { ok: true; user: User } | { ok: false; reason: 'bad_credentials' | 'locked' | 'throttled' }

export interface LoginGateOptions {
  limiter: LoginLimiter
  /** Attempts per bucket, to know where the delay starts (half of each). */
  maxPerUser: number
  maxPerAddress: number
  /** The first delay, ms (LOGIN_DELAY_MS); 0 = no delay. */
  delayMs: number
  /** Requests allowed to wait at once (default 64). */
  maxDelayed?: number
  /** Waits (tests inject one that records the delay and returns at once). */
  sleep?: (ms: number) => Promise<void>
  /** The password check (tests inject one that counts KDF runs). */
  verify?: (phc: string, password: string) => Promise<boolean>
  /** Hashes a password for the rehash after a sign-in with an old or imported hash. */
  hash?: (password: string) => Promise<string>
}

export interface LoginInput {
  users: UserDirectory
  username: string
  password: string
  /** The client address (request.ip: the socket, or X-Forwarded-For behind TRUST_PROXY). */
  address: string
  /** The client the user signs in to; none for the device verification page (no client asks yet). */
  clientId?: string
  log: FastifyBaseLogger
  metrics: AuthMetrics
  /** Failures and lockouts are recorded in the audit trail too. */
  audit: AuditTrail
}

/** The delay before an attempt, given how many attempts its bucket already counts. */
export function delayFor(counted: number, max: number, baseMs: number): number {
  const free = Math.floor(max / 2)
  if (baseMs <= 0 || counted < free) return 0
  return Math.min(baseMs * 2 ** Math.min(counted - free, 30), MAX_DELAY_MS)
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export class LoginGate {
  readonly limiter: LoginLimiter
  readonly #o: Required<LoginGateOptions>
  #delayed = 0

  constructor(options: LoginGateOptions) {
    this.limiter = options.limiter
    this.#o = { maxDelayed: 64, sleep: realSleep, verify: verifyPassword, hash: hashPassword, ...options }
  }

  /** How many requests are waiting out a delay right now. */
  get delayed(): number {
    return this.#delayed
  }

  async authenticate(input: LoginInput): Promise<LoginOutcome> {
    const { log, metrics, audit: trail } = input
    const refs = { client_id: input.clientId, ip: input.address }
    // The account's bucket, whether it is named by its username or its email: two names must not
    // give one account twice the attempts. A login that names no account keeps its own bucket.
    const bucket = input.username.includes('@') ? ((await findLogin(input.users, input.username))?.username ?? input.username) : input.username
    let check = await this.limiter.attempt(bucket, input.address)
    for (let round = 0; check.status === 'busy'; round++) {
      if (round >= BUSY_ROUNDS || !(await this.#wait(BUSY_FIRST_WAIT_MS * 2 ** round))) {
        metrics.loginThrottled.inc()
        audit(log, trail, { event: 'login.failed', reason: 'throttled', scope: check.scope, ...refs }, 'login refused: too many undecided attempts')
        return { ok: false, reason: 'throttled' }
      }
      check = await this.limiter.attempt(bucket, input.address)
    }
    if (check.status === 'locked') {
      metrics.loginLockouts.inc({ scope: check.scope })
      audit(log, trail, { event: 'login.locked', scope: check.scope, locked_now: check.lockedNow, retry_after: Math.ceil(check.retryAfterMs / 1000), ...refs }, 'login refused: locked out')
      return { ok: false, reason: 'locked' }
    }
    const { ticket, counted } = check
    const wait = Math.max(delayFor(counted.user, this.#o.maxPerUser, this.#o.delayMs), delayFor(counted.address, this.#o.maxPerAddress, this.#o.delayMs))
    if (wait > 0) {
      if (!(await this.#wait(wait))) {
        await this.limiter.release(ticket)
        metrics.loginThrottled.inc()
        audit(log, trail, { event: 'login.failed', reason: 'throttled', user_ref: ticket.user, ...refs }, 'login refused: too many delayed attempts')
        return { ok: false, reason: 'throttled' }
      }
      metrics.loginDelayed.inc()
    }
    let user: User | null
    try {
      user = await authenticateUser(input.users, input.username, input.password, this.#o.verify)
    } catch (err) {
      // The directory failed (StoreUnavailable → 503): this was no guess, give the attempt back.
      await this.#releaseQuietly(ticket)
      throw err
    }
    if (user === null) {
      await this.limiter.failed(ticket)
      metrics.loginFailures.inc({ reason: 'bad_credentials' })
      audit(log, trail, { event: 'login.failed', reason: 'bad_credentials', user_ref: ticket.user, failures: counted.user + 1, delayed_ms: wait, ...refs }, 'login failed')
      return { ok: false, reason: 'bad_credentials' }
    }
    await this.limiter.succeeded(ticket)
    return { ok: true, user: await this.#rehashed(input, user) }
  }

  /**
   * DESIGN §10.2: a user whose hash is imported (bcrypt, PBKDF2, scrypt, argon2i) or argon2id at
   * other parameters gets our argon2id now that the password is known. Only if the stored hash is
   * still the one just verified (an administrator's new password is never overwritten), and never
   * at the cost of the sign-in: a failure is logged and the user signs in with the old hash kept.
   * The user returned carries the hash now stored (POST /login compares it after the session starts).
   */
  async #rehashed(input: LoginInput, user: User): Promise<User> {
    if (!needsRehash(user.passwordHash)) return user
    try {
      const fresh = await this.#o.hash(input.password)
      // Uncached, by name: the hash stored now, not a copy.
      const current = await input.users.findByUsername(user.username)
      if (current === null || current.id !== user.id || current.passwordHash !== user.passwordHash) return user
      const updated = await input.users.setPassword(user.id, fresh)
      if (updated === null) return user
      input.log.info({ event: 'login.rehashed', sub: user.id, client_id: input.clientId }, 'password hash upgraded to the current argon2id parameters')
      return updated
    } catch (err) {
      input.log.warn({ event: 'login.rehash_failed', sub: user.id, client_id: input.clientId, err: (err as Error).message }, 'upgrading the password hash failed; the old one is kept')
      return user
    }
  }

  /** Waits `ms` unless `maxDelayed` requests already wait; false then. */
  async #wait(ms: number): Promise<boolean> {
    if (this.#delayed >= this.#o.maxDelayed) return false
    this.#delayed++
    try {
      await this.#o.sleep(ms)
    } finally {
      this.#delayed--
    }
    return true
  }

  async #releaseQuietly(ticket: LoginTicket): Promise<void> {
    try {
      await this.limiter.release(ticket)
    } catch {
      // The store is down: the attempt stays counted until its window passes.
    }
  }
}
