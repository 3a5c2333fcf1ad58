import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { DEFAULT_KEY_PREFIX, loginSessionKey } from './store/keys.js'
import { redisCall as call } from './redis-call.js'
import { StoreUnavailable, type Clock } from './store/types.js'

/**
 * Login (cookie) sessions: what a browser holds after signing in at /login, so /authorize can
 * skip the form (SSO) and /logout can end it (DESIGN §1 flows 2 and 7).
 *
 * The cookie carries `<id>.<secret>`. The id is public: it is the ID token's `sid` (OIDC
 * Front-Channel Logout §3) and the `sessionId` of the refresh families started from this login.
 * Only a SHA-256 of the secret is stored (DESIGN §8), and it is compared in constant time, so
 * neither a store dump nor a leaked ID token lets anyone ride the session.
 */
export interface LoginSession {
  /** Public id: the ID token's `sid`, the families' `sessionId`. */
  id: string
  userId: string
  /** When the user last entered a password, seconds since the epoch (`auth_time`). */
  authTime: number
  /** ms epoch */
  createdAt: number
  /** ms epoch; the session is gone after this */
  expiresAt: number
}

export interface StartSessionInput {
  userId: string
  authTime: number
  /**
   * Re-authentication of the same user in a live session: keep this public id (so logout still
   * finds the families started under it) but replace the secret, so a cookie known before the
   * login is worthless after it (session fixation).
   */
  reuseId?: string
}

export interface LoginSessionStore {
  /** Starts (or re-keys, see reuseId) a session; returns it with the cookie value. */
  start(input: StartSessionInput): Promise<{ session: LoginSession; token: string }>
  /** The live session a cookie value names, or null (malformed, wrong secret, unknown, expired). */
  resolve(token: string): Promise<LoginSession | null>
  /** The live session with this public id, or null. */
  get(id: string): Promise<LoginSession | null>
  /** Ends a session; returns it if it was live. */
  end(id: string): Promise<LoginSession | null>
}

export interface SessionStoreOptions {
  /** Session lifetime (ms); fixed at login, renewed only by logging in again. */
  ttlMs: number
  clock?: Clock
}

/** How long a login session lasts: one working day; `max_age` and `prompt=login` ask for less. */
export const LOGIN_SESSION_TTL_MS = 12 * 60 * 60 * 1000

const ID = /^[A-Za-z0-9_-]{22}$/
const SECRET = /^[A-Za-z0-9_-]{43}$/

interface Stored {
  userId: string
  authTime: number
  createdAt: number
  expiresAt: number
  /** base64url SHA-256 of the secret */
  secretHash: string
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest()
}

function parseToken(token: string): { id: string; secret: string } | null {
  if (typeof token !== 'string' || token.length > 80) return null
  const dot = token.indexOf('.')
  if (dot < 0) return null
  const id = token.slice(0, dot)
  const secret = token.slice(dot + 1)
  return ID.test(id) && SECRET.test(secret) ? { id, secret } : null
}

function secretMatches(stored: Stored, secret: string): boolean {
  const expected = Buffer.from(stored.secretHash, 'base64url')
  const given = digest(secret)
  return expected.length === given.length && timingSafeEqual(expected, given)
}

function newRecord(input: StartSessionInput, now: number, ttlMs: number): { id: string; secret: string; stored: Stored } {
  const id = input.reuseId !== undefined && ID.test(input.reuseId) ? input.reuseId : randomBytes(16).toString('base64url')
  const secret = randomBytes(32).toString('base64url')
  const stored: Stored = { userId: input.userId, authTime: input.authTime, createdAt: now, expiresAt: now + ttlMs, secretHash: digest(secret).toString('base64url') }
  return { id, secret, stored }
}

function toSession(id: string, s: Stored): LoginSession {
  return { id, userId: s.userId, authTime: s.authTime, createdAt: s.createdAt, expiresAt: s.expiresAt }
}

function checkOptions(options: SessionStoreOptions): { ttlMs: number; clock: Clock } {
  if (!Number.isSafeInteger(options?.ttlMs) || options.ttlMs < 1) throw new TypeError('ttlMs must be a positive integer (ms)')
  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning ms')
  return { ttlMs: options.ttlMs, clock }
}

/** In-process sessions: the development default; same contract as the Redis store. */
export class MemoryLoginSessionStore implements LoginSessionStore {
  readonly #ttlMs: number
  readonly #clock: Clock
  readonly #sessions = new Map<string, Stored>()

  constructor(options: SessionStoreOptions) {
    const { ttlMs, clock } = checkOptions(options)
    this.#ttlMs = ttlMs
    this.#clock = clock
  }

  async start(input: StartSessionInput): Promise<{ session: LoginSession; token: string }> {
    const now = this.#clock()
    this.#sweep(now)
    let rec = newRecord(input, now, this.#ttlMs)
    while (input.reuseId === undefined && this.#sessions.has(rec.id)) rec = newRecord(input, now, this.#ttlMs)
    this.#sessions.set(rec.id, rec.stored)
    return { session: toSession(rec.id, rec.stored), token: `${rec.id}.${rec.secret}` }
  }

  async resolve(token: string): Promise<LoginSession | null> {
    const parsed = parseToken(token)
    if (parsed === null) return null
    const stored = this.#live(parsed.id)
    return stored !== null && secretMatches(stored, parsed.secret) ? toSession(parsed.id, stored) : null
  }

  async get(id: string): Promise<LoginSession | null> {
    const stored = this.#live(id)
    return stored === null ? null : toSession(id, stored)
  }

  async end(id: string): Promise<LoginSession | null> {
    const stored = this.#live(id)
    this.#sessions.delete(id)
    return stored === null ? null : toSession(id, stored)
  }

  #live(id: string): Stored | null {
    if (typeof id !== 'string' || !ID.test(id)) return null
    const stored = this.#sessions.get(id)
    if (stored === undefined) return null
    if (this.#clock() >= stored.expiresAt) {
      this.#sessions.delete(id)
      return null
    }
    return stored
  }

  /** Memory stays bounded by live sessions. */
  #sweep(now: number): void {
    for (const [id, s] of this.#sessions) if (now >= s.expiresAt) this.#sessions.delete(id)
  }
}

export interface RedisLoginSessionStoreOptions extends SessionStoreOptions {
  redis: Redis | Cluster
  keyPrefix?: string
}

/**
 * Sessions in Redis: one JSON string per session with a TTL (PX, relative, so the Redis clock
 * never matters; expiry is decided with the injected clock). The connection is shared, not owned.
 */
export class RedisLoginSessionStore implements LoginSessionStore {
  readonly #redis: Redis | Cluster
  readonly #ttlMs: number
  readonly #clock: Clock
  readonly #prefix: string

  constructor(options: RedisLoginSessionStoreOptions) {
    const { ttlMs, clock } = checkOptions(options)
    this.#redis = options.redis
    this.#ttlMs = ttlMs
    this.#clock = clock
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
  }

  async start(input: StartSessionInput): Promise<{ session: LoginSession; token: string }> {
    const now = this.#clock()
    for (let attempt = 0; attempt < 3; attempt++) {
      const rec = newRecord(input, now, this.#ttlMs)
      const key = loginSessionKey(rec.id, this.#prefix)
      const value = JSON.stringify(rec.stored)
      // A re-keyed session overwrites its own record; a new one must not collide with another.
      const ok = await call('start', () =>
        input.reuseId === undefined ? this.#redis.set(key, value, 'PX', this.#ttlMs, 'NX') : this.#redis.set(key, value, 'PX', this.#ttlMs),
      )
      if (ok === 'OK') return { session: toSession(rec.id, rec.stored), token: `${rec.id}.${rec.secret}` }
    }
    throw new StoreUnavailable('redis: could not allocate a session id')
  }

  async resolve(token: string): Promise<LoginSession | null> {
    const parsed = parseToken(token)
    if (parsed === null) return null
    const stored = await this.#read(parsed.id)
    return stored !== null && secretMatches(stored, parsed.secret) ? toSession(parsed.id, stored) : null
  }

  async get(id: string): Promise<LoginSession | null> {
    const stored = await this.#read(id)
    return stored === null ? null : toSession(id, stored)
  }

  async end(id: string): Promise<LoginSession | null> {
    if (typeof id !== 'string' || !ID.test(id)) return null
    const raw = await call('end', () => this.#redis.getdel(loginSessionKey(id, this.#prefix)))
    const stored = decode(raw)
    return stored === null || this.#clock() >= stored.expiresAt ? null : toSession(id, stored)
  }

  async #read(id: string): Promise<Stored | null> {
    if (typeof id !== 'string' || !ID.test(id)) return null
    const stored = decode(await call('get', () => this.#redis.get(loginSessionKey(id, this.#prefix))))
    return stored === null || this.#clock() >= stored.expiresAt ? null : stored
  }
}

function decode(raw: string | null): Stored | null {
  if (raw === null) return null
  try {
    const v = JSON.parse(raw) as Partial<Stored>
    if (typeof v.userId !== 'string' || typeof v.authTime !== 'number' || typeof v.expiresAt !== 'number' || typeof v.createdAt !== 'number' || typeof v.secretHash !== 'string') {
      return null
    }
    return v as Stored
  } catch {
    return null
  }
}
