import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { type Clock } from '../store/types.js'

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
  /**
   * How the user authenticated at `authTime` (RFC 8176 values: `pwd`, `otp`, `hwk`, `user`,
   * `mfa`...; mfa/assurance.ts); `['pwd']` for sessions started before second factors existed.
   */
  amr: string[]
  /** ms epoch */
  createdAt: number
  /** ms epoch; the session is gone after this */
  expiresAt: number
  /** ms epoch: the last login or /authorize answered from this session. */
  lastUsedAt: number
  /** The browser's User-Agent at login (truncated), to tell the user's devices apart. */
  userAgent?: string
  /** The client address at login (DESIGN §8: forwarded only behind a trusted proxy). */
  address?: string
  /** Clients that received a code in this session: those told when it ends (back-channel logout). */
  clientIds: string[]
}

export interface StartSessionInput {
  userId: string
  authTime: number
  /** How the user authenticated (RFC 8176); `['pwd']` when absent. */
  amr?: readonly string[]
  /**
   * Re-authentication of the same user in a live session: keep this public id (so logout still
   * finds the families started under it) but replace the secret, so a cookie known before the
   * login is worthless after it (session fixation).
   */
  reuseId?: string
  userAgent?: string
  address?: string
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
  /**
   * Records that a client received a code from this session: its last use, and the client among
   * those told when the session ends. Nothing happens for a session that is not live.
   */
  recordUse(id: string, clientId: string): Promise<void>
  /** The user's live sessions, oldest first (DESIGN §10.1: a session is listed under its user). */
  listByUser(userId: string): Promise<LoginSession[]>
  /** Ends every live session of the user; returns those ended. */
  endByUser(userId: string): Promise<LoginSession[]>
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
/** What is kept of a User-Agent and an address: enough to recognise a device, bounded. */
const MAX_USER_AGENT = 256
const MAX_ADDRESS = 64
/** An `amr` value: a short token (RFC 8176 §2), no spaces. */
const AMR_VALUE = /^[a-z0-9_-]{1,16}$/
/** Client ids are visible ASCII without spaces (directory/config-file.ts), so a space-separated list holds them. */
export const CLIENT_ID = /^[\x21-\x7e]{1,128}$/
/** A session records at most this many clients (a browser signs in to a handful). */
export const MAX_CLIENTS = 64

export function isSessionId(value: unknown): value is string {
  return typeof value === 'string' && ID.test(value)
}

export interface Stored {
  userId: string
  authTime: number
  /** Space-separated RFC 8176 values; absent: `pwd`. */
  amr?: string
  createdAt: number
  expiresAt: number
  lastUsedAt?: number
  userAgent?: string
  address?: string
  /** Space-separated client ids (a string, so the Lua side never meets an empty JSON array). */
  clients?: string
  /** base64url SHA-256 of the secret */
  secretHash: string
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest()
}

export function parseToken(token: string): { id: string; secret: string } | null {
  if (typeof token !== 'string' || token.length > 80) return null
  const dot = token.indexOf('.')
  if (dot < 0) return null
  const id = token.slice(0, dot)
  const secret = token.slice(dot + 1)
  return ID.test(id) && SECRET.test(secret) ? { id, secret } : null
}

export function secretMatches(stored: Stored, secret: string): boolean {
  const expected = Buffer.from(stored.secretHash, 'base64url')
  const given = digest(secret)
  return expected.length === given.length && timingSafeEqual(expected, given)
}

/** Control characters never reach a listing or a log line. */
function clean(value: string | undefined, max: number): string | undefined {
  if (typeof value !== 'string') return undefined
  const v = value.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, max)
  return v === '' ? undefined : v
}

export function newRecord(input: StartSessionInput, now: number, ttlMs: number, previous: Stored | null): { id: string; secret: string; stored: Stored } {
  const id = input.reuseId !== undefined && ID.test(input.reuseId) ? input.reuseId : randomBytes(16).toString('base64url')
  const secret = randomBytes(32).toString('base64url')
  const stored: Stored = { userId: input.userId, authTime: input.authTime, createdAt: now, expiresAt: now + ttlMs, lastUsedAt: now, secretHash: digest(secret).toString('base64url') }
  const userAgent = clean(input.userAgent, MAX_USER_AGENT)
  const address = clean(input.address, MAX_ADDRESS)
  if (userAgent !== undefined) stored.userAgent = userAgent
  if (address !== undefined) stored.address = address
  const amr = (input.amr ?? []).filter((v) => AMR_VALUE.test(v))
  if (amr.length > 0 && !(amr.length === 1 && amr[0] === 'pwd')) stored.amr = [...new Set(amr)].join(' ')
  // Re-keying keeps the clients of the session: they still hold tokens of its id.
  if (previous !== null && previous.userId === input.userId && previous.clients) stored.clients = previous.clients
  return { id, secret, stored }
}

function clientList(s: Stored): string[] {
  return s.clients ? s.clients.split(' ').filter((c) => c !== '') : []
}

export function toSession(id: string, s: Stored): LoginSession {
  const amr = typeof s.amr === 'string' && s.amr !== '' ? s.amr.split(' ') : ['pwd']
  const out: LoginSession = { id, userId: s.userId, authTime: s.authTime, amr, createdAt: s.createdAt, expiresAt: s.expiresAt, lastUsedAt: s.lastUsedAt ?? s.createdAt, clientIds: clientList(s) }
  if (s.userAgent !== undefined) out.userAgent = s.userAgent
  if (s.address !== undefined) out.address = s.address
  return out
}

function withClient(clients: string | undefined, clientId: string): string {
  const list = clients ? clients.split(' ') : []
  if (list.includes(clientId) || list.length >= MAX_CLIENTS) return list.join(' ')
  return [...list, clientId].join(' ')
}

export const byCreation = (a: LoginSession, b: LoginSession): number => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)

export function checkOptions(options: SessionStoreOptions): { ttlMs: number; clock: Clock } {
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
  /** user id → ids of the user's sessions (pruned as they end or expire) */
  readonly #byUser = new Map<string, Set<string>>()

  constructor(options: SessionStoreOptions) {
    const { ttlMs, clock } = checkOptions(options)
    this.#ttlMs = ttlMs
    this.#clock = clock
  }

  async start(input: StartSessionInput): Promise<{ session: LoginSession; token: string }> {
    const now = this.#clock()
    this.#sweep(now)
    const previous = input.reuseId !== undefined ? this.#live(input.reuseId) : null
    if (previous !== null && previous.userId !== input.userId) this.#remove(input.reuseId!, previous)
    let rec = newRecord(input, now, this.#ttlMs, previous)
    while (input.reuseId === undefined && this.#sessions.has(rec.id)) rec = newRecord(input, now, this.#ttlMs, null)
    this.#sessions.set(rec.id, rec.stored)
    let ids = this.#byUser.get(input.userId)
    if (ids === undefined) this.#byUser.set(input.userId, (ids = new Set()))
    ids.add(rec.id)
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
    if (stored === null) return null
    this.#remove(id, stored)
    return toSession(id, stored)
  }

  async recordUse(id: string, clientId: string): Promise<void> {
    const stored = this.#live(id)
    if (stored === null || !CLIENT_ID.test(clientId)) return
    stored.lastUsedAt = this.#clock()
    stored.clients = withClient(stored.clients, clientId)
  }

  async listByUser(userId: string): Promise<LoginSession[]> {
    const ids = this.#byUser.get(userId)
    if (ids === undefined) return []
    const live: LoginSession[] = []
    for (const id of [...ids]) {
      const stored = this.#live(id)
      if (stored === null || stored.userId !== userId) ids.delete(id)
      else live.push(toSession(id, stored))
    }
    if (ids.size === 0) this.#byUser.delete(userId)
    return live.sort(byCreation)
  }

  async endByUser(userId: string): Promise<LoginSession[]> {
    const live = await this.listByUser(userId)
    for (const s of live) this.#sessions.delete(s.id)
    this.#byUser.delete(userId)
    return live
  }

  #remove(id: string, stored: Stored): void {
    this.#sessions.delete(id)
    const ids = this.#byUser.get(stored.userId)
    ids?.delete(id)
    if (ids?.size === 0) this.#byUser.delete(stored.userId)
  }

  #live(id: string): Stored | null {
    if (typeof id !== 'string' || !ID.test(id)) return null
    const stored = this.#sessions.get(id)
    if (stored === undefined) return null
    if (this.#clock() >= stored.expiresAt) {
      this.#remove(id, stored)
      return null
    }
    return stored
  }

  /** Memory stays bounded by live sessions. */
  #sweep(now: number): void {
    for (const [id, s] of this.#sessions) if (now >= s.expiresAt) this.#remove(id, s)
  }
}
