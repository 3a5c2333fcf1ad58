import { createHash, randomBytes } from 'node:crypto'
import { type Clock } from '../store/types.js'

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
  /** RFC 9449 §10 `dpop_jkt` of the authorization request: the code exchange must prove this key. */
  dpopJkt?: string
  /** The resources the authorization request granted (RFC 8707); absent on older codes: the client's audience. */
  resources?: string[]
  /** How the user authenticated (the session's amr, RFC 8176): the ID token's `amr` and `acr`; absent on older codes: `['pwd']`. */
  amr?: string[]
  /** The supported `acr_values` the request asked for (OIDC Core §3.1.2.1): the access tokens then carry `acr` (RFC 9068 §2.2.1). */
  acrValues?: string[]
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
export const CODE = /^[A-Za-z0-9_-]{43}$/

export function newCode(): string {
  return randomBytes(32).toString('base64url')
}

export function codeHash(code: string): string {
  return createHash('sha256').update(code).digest('base64url')
}

export function settings(options: CodeStoreOptions): { lifetimeMs: number; spentTtlMs: number; clock: Clock } {
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
