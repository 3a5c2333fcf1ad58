import type { AuthContext } from './auth-context.js'

interface Entry {
  readonly auth: AuthContext
  /** `exp` in milliseconds: the entry is never served at or after it. */
  readonly expMs: number
  readonly kid: string
}

/**
 * Tokens whose signature and claims were already checked, keyed by the token
 * string itself (an exact match is the only way to hit), so a repeated
 * request skips the RSA verification. LRU-bounded (a Map keeps insertion
 * order: a hit moves the entry to the back, eviction takes the front); an
 * entry is dropped at its token's `exp` and never served after it.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, Entry>()
  readonly #max: number

  constructor(maxEntries: number) {
    this.#max = maxEntries
  }

  get size(): number {
    return this.#entries.size
  }

  get(token: string, nowMs: number): AuthContext | undefined {
    const entry = this.#entries.get(token)
    if (entry === undefined) return undefined
    this.#entries.delete(token)
    if (nowMs >= entry.expMs) return undefined
    this.#entries.set(token, entry)
    return entry.auth
  }

  set(token: string, auth: AuthContext, kid: string, nowMs: number): void {
    const expMs = auth.expiresAt * 1000
    if (this.#max === 0 || nowMs >= expMs) return
    if (this.#entries.size >= this.#max && !this.#entries.has(token)) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    this.#entries.set(token, { auth, expMs, kid })
  }

  delete(token: string): void {
    this.#entries.delete(token)
  }

  /** A key left the JWKS: nothing it signed may be served from here any more. */
  deleteByKid(kids: ReadonlySet<string>): number {
    let n = 0
    for (const [token, entry] of this.#entries) {
      if (kids.has(entry.kid)) {
        this.#entries.delete(token)
        n++
      }
    }
    return n
  }

  /** A family was revoked (DESIGN §6). */
  deleteBySid(sid: string): number {
    let n = 0
    for (const [token, entry] of this.#entries) {
      if (entry.auth.sid === sid) {
        this.#entries.delete(token)
        n++
      }
    }
    return n
  }

  clear(): void {
    this.#entries.clear()
  }
}
