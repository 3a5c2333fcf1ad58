import { createHash, randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { authorizationCodeKey, DEFAULT_KEY_PREFIX } from '../store/key-names.js'
import { StoreUnavailable, type Clock } from '../store/types.js'

/**
 * Authorization codes (RFC 6749 §4.1.2, §10.5; DESIGN §8): random (256 bits), stored only as a
 * SHA-256, single use, short-lived, bound to the client, the redirect URI and the PKCE challenge.
 *
 * A code is consumed in one atomic step; a consumed code leaves a spent marker for a while, so
 * a second use is recognised as a replay and can revoke what the first use issued (RFC 6749
 * §4.1.2: "the authorization server MUST deny the request and SHOULD revoke ... all tokens
 * previously issued based on that authorization code"). The first use records the family it
 * started; if a replay arrived in between, recordFamily says so and the first use revokes it.
 */
export interface CodeGrant {
  clientId: string
  redirectUri: string
  /** BASE64URL(SHA-256(code_verifier)) (RFC 7636 §4.2, S256 only). */
  codeChallenge: string
  scope: string
  userId: string
  /** The login session the code came from (the ID token's `sid`, the family's `sessionId`). */
  sessionId: string
  /** seconds since the epoch */
  authTime: number
  nonce?: string
}

export type ConsumeOutcome =
  /** First use of a live code: the grant it carries. It is spent now. */
  | { status: 'ok'; grant: CodeGrant }
  /** The code was already used: deny, and revoke `familyId` (what the first use started) if any. */
  | { status: 'reused'; grant: CodeGrant; familyId?: string }
  /** Issued but not used in time. */
  | { status: 'expired' }
  /** Unknown, malformed or long gone. */
  | { status: 'not_found' }

export interface AuthorizationCodeStore {
  /** Stores the grant under a new code; returns the code (the only copy of it). */
  issue(grant: CodeGrant): Promise<string>
  /** One atomic step: the first caller gets `ok`, every later one `reused`. */
  consume(code: string): Promise<ConsumeOutcome>
  /**
   * Remembers the family the first use started. `replayed` when a second use came in between:
   * that use could not name the family yet, so the caller must revoke it.
   */
  recordFamily(code: string, familyId: string): Promise<'recorded' | 'replayed'>
}

export interface CodeStoreOptions {
  /** How long a code may wait to be exchanged (ms); 60 s by default. */
  lifetimeMs?: number
  /** How long a spent code is remembered for replay detection (ms); 10 min by default. */
  spentTtlMs?: number
  clock?: Clock
}

export const CODE_LIFETIME_MS = 60_000
const SPENT_TTL_MS = 10 * 60_000
const CODE = /^[A-Za-z0-9_-]{43}$/

export function newCode(): string {
  return randomBytes(32).toString('base64url')
}

export function codeHash(code: string): string {
  return createHash('sha256').update(code).digest('base64url')
}

function settings(options: CodeStoreOptions): { lifetimeMs: number; spentTtlMs: number; clock: Clock } {
  const lifetimeMs = options.lifetimeMs ?? CODE_LIFETIME_MS
  const spentTtlMs = options.spentTtlMs ?? SPENT_TTL_MS
  for (const [name, v] of [['lifetimeMs', lifetimeMs], ['spentTtlMs', spentTtlMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`${name} must be a positive integer (ms)`)
  }
  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning ms')
  return { lifetimeMs, spentTtlMs, clock }
}

interface MemoryEntry {
  grant: CodeGrant
  expiresAt: number
  used: boolean
  familyId?: string
  replayed: boolean
  /** When the entry may be dropped (ms of the injected clock). */
  dropAt: number
}

/** In-process codes: the development default; same contract as the Redis store. */
export class MemoryAuthorizationCodeStore implements AuthorizationCodeStore {
  readonly #s: { lifetimeMs: number; spentTtlMs: number; clock: Clock }
  readonly #codes = new Map<string, MemoryEntry>()

  constructor(options: CodeStoreOptions = {}) {
    this.#s = settings(options)
  }

  async issue(grant: CodeGrant): Promise<string> {
    const now = this.#s.clock()
    for (const [h, e] of this.#codes) if (now >= e.dropAt) this.#codes.delete(h)
    const code = newCode()
    const expiresAt = now + this.#s.lifetimeMs
    this.#codes.set(codeHash(code), { grant: { ...grant }, expiresAt, used: false, replayed: false, dropAt: expiresAt })
    return code
  }

  async consume(code: string): Promise<ConsumeOutcome> {
    if (typeof code !== 'string' || !CODE.test(code)) return { status: 'not_found' }
    const h = codeHash(code)
    const e = this.#codes.get(h)
    const now = this.#s.clock()
    if (e === undefined) return { status: 'not_found' }
    if (e.used) {
      if (now >= e.dropAt) {
        this.#codes.delete(h)
        return { status: 'not_found' }
      }
      e.replayed = true
      return { status: 'reused', grant: { ...e.grant }, ...(e.familyId === undefined ? {} : { familyId: e.familyId }) }
    }
    if (now >= e.expiresAt) {
      this.#codes.delete(h)
      return { status: 'expired' }
    }
    e.used = true
    e.dropAt = now + this.#s.spentTtlMs
    return { status: 'ok', grant: { ...e.grant } }
  }

  async recordFamily(code: string, familyId: string): Promise<'recorded' | 'replayed'> {
    const e = typeof code === 'string' && CODE.test(code) ? this.#codes.get(codeHash(code)) : undefined
    if (e === undefined) return 'recorded'
    e.familyId = familyId
    return e.replayed ? 'replayed' : 'recorded'
  }
}

/**
 * Consume, atomically. KEYS[1] code key; ARGV[1] now (ms, the injected clock), ARGV[2] how long
 * the spent marker lives (ms). Returns {'ok', grant} | {'reused', grant, familyId or ''} |
 * {'expired'} | {'not_found'}.
 */
const CONSUME_SCRIPT = `
local f = redis.call('HMGET', KEYS[1], 'grant', 'expiresAt', 'used', 'family')
if not f[1] then
  return {'not_found'}
end
if f[3] == '1' then
  redis.call('HSET', KEYS[1], 'replayed', '1')
  return {'reused', f[1], f[4] or ''}
end
if tonumber(ARGV[1]) >= tonumber(f[2]) then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok', f[1]}
`

/** KEYS[1] code key; ARGV[1] family id. Returns 'recorded' | 'replayed' | 'gone'. */
const RECORD_FAMILY_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'gone'
end
redis.call('HSET', KEYS[1], 'family', ARGV[1])
if redis.call('HGET', KEYS[1], 'replayed') == '1' then
  return 'replayed'
end
return 'recorded'
`

type ScriptFn = (key: string, ...args: (string | number)[]) => Promise<unknown>
interface CodeScripts {
  gatehouseCodeConsume: ScriptFn
  gatehouseCodeRecordFamily: ScriptFn
}

export interface RedisAuthorizationCodeStoreOptions extends CodeStoreOptions {
  redis: Redis | Cluster
  keyPrefix?: string
}

/**
 * Codes in Redis: one hash per code under its SHA-256 (fields grant, expiresAt, used, family,
 * replayed), TTL the code's lifetime, then the spent marker's. Each step is one Lua script on one
 * key (Cluster-safe). Expiry is decided with the injected clock; TTLs are relative.
 */
export class RedisAuthorizationCodeStore implements AuthorizationCodeStore {
  readonly #redis: Redis | Cluster
  readonly #scripts: CodeScripts
  readonly #s: { lifetimeMs: number; spentTtlMs: number; clock: Clock }
  readonly #prefix: string

  constructor(options: RedisAuthorizationCodeStoreOptions) {
    this.#s = settings(options)
    this.#redis = options.redis
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#redis.defineCommand('gatehouseCodeConsume', { numberOfKeys: 1, lua: CONSUME_SCRIPT })
    this.#redis.defineCommand('gatehouseCodeRecordFamily', { numberOfKeys: 1, lua: RECORD_FAMILY_SCRIPT })
    this.#scripts = this.#redis as unknown as CodeScripts
  }

  async issue(grant: CodeGrant): Promise<string> {
    const code = newCode()
    const key = authorizationCodeKey(codeHash(code), this.#prefix)
    const expiresAt = this.#s.clock() + this.#s.lifetimeMs
    const replies = await call('code issue', () =>
      this.#redis
        .multi()
        .hset(key, 'grant', JSON.stringify(grant), 'expiresAt', String(expiresAt), 'used', '0')
        .pexpire(key, this.#s.lifetimeMs)
        .exec(),
    )
    if (replies === null || replies.some(([err]) => err !== null)) throw new StoreUnavailable('redis: code issue failed')
    return code
  }

  async consume(code: string): Promise<ConsumeOutcome> {
    if (typeof code !== 'string' || !CODE.test(code)) return { status: 'not_found' }
    const key = authorizationCodeKey(codeHash(code), this.#prefix)
    const reply = await call('code consume', () => this.#scripts.gatehouseCodeConsume(key, this.#s.clock(), this.#s.spentTtlMs))
    if (!Array.isArray(reply) || typeof reply[0] !== 'string') throw new StoreUnavailable('redis: unexpected reply from the code script')
    const status = reply[0]
    if (status === 'not_found' || status === 'expired') return { status }
    const grant = decodeGrant(reply[1])
    if (grant === null) return { status: 'not_found' }
    if (status === 'ok') return { status, grant }
    const familyId = typeof reply[2] === 'string' && reply[2] !== '' ? reply[2] : undefined
    return { status: 'reused', grant, ...(familyId === undefined ? {} : { familyId }) }
  }

  async recordFamily(code: string, familyId: string): Promise<'recorded' | 'replayed'> {
    if (typeof code !== 'string' || !CODE.test(code)) return 'recorded'
    const key = authorizationCodeKey(codeHash(code), this.#prefix)
    const reply = await call('code record', () => this.#scripts.gatehouseCodeRecordFamily(key, familyId))
    return reply === 'replayed' ? 'replayed' : 'recorded'
  }
}

function decodeGrant(raw: unknown): CodeGrant | null {
  if (typeof raw !== 'string') return null
  try {
    const g = JSON.parse(raw) as Partial<CodeGrant>
    const strings = [g.clientId, g.redirectUri, g.codeChallenge, g.scope, g.userId, g.sessionId]
    if (strings.some((v) => typeof v !== 'string') || typeof g.authTime !== 'number') return null
    if (g.nonce !== undefined && typeof g.nonce !== 'string') return null
    return g as CodeGrant
  } catch {
    return null
  }
}
