import type { AuthContext } from './auth-context.js'

interface Entry {
  readonly token: string
  readonly auth: AuthContext
  /** `exp` in milliseconds: the entry is never served at or after it. */
  readonly expMs: number
  readonly kid: string
}

/** How many trailing characters of a token key its entry: part of its signature. */
const KEY_LENGTH = 32

/** The map key of a token: its last characters (the end of its signature), cheap to hash. */
function keyOf(token: string): string {
  return token.length <= KEY_LENGTH ? token : token.slice(-KEY_LENGTH)
}

/**
 * Tokens whose signature and claims were already checked, so a repeated
 * request skips the RSA verification. A hit is an exact match of the whole
 * token string: entries are found by the token's last characters (hashing a
 * fresh 800-character string per request cost more than the rest of a hit) and
 * then compared in full, so two tokens sharing an ending only ever miss.
 * LRU-bounded (a Map keeps insertion order: a hit moves the entry to the back,
 * eviction takes the front); an entry is dropped at its token's `exp` and
 * never served after it.
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
    const key = keyOf(token)
    const entry = this.#entries.get(key)
    if (entry === undefined || entry.token !== token) return undefined
    this.#entries.delete(key)
    if (nowMs >= entry.expMs) return undefined
    this.#entries.set(key, entry)
    return entry.auth
  }

  set(token: string, auth: AuthContext, kid: string, nowMs: number): void {
    const expMs = auth.expiresAt * 1000
    if (this.#max === 0 || nowMs >= expMs) return
    const key = keyOf(token)
    if (this.#entries.size >= this.#max && !this.#entries.has(key)) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    // A token sharing its ending with a cached one replaces it (the other is verified again when seen).
    this.#entries.set(key, { token, auth, expMs, kid })
  }

  delete(token: string): void {
    const key = keyOf(token)
    if (this.#entries.get(key)?.token === token) this.#entries.delete(key)
  }

  /** A key left the JWKS: nothing it signed may be served from here any more. */
  deleteByKid(kids: ReadonlySet<string>): number {
    let n = 0
    for (const [key, entry] of this.#entries) {
      if (kids.has(entry.kid)) {
        this.#entries.delete(key)
        n++
      }
    }
    return n
  }

  /** A family was revoked (DESIGN §6). */
  deleteBySid(sid: string): number {
    let n = 0
    for (const [key, entry] of this.#entries) {
      if (entry.auth.sid === sid) {
        this.#entries.delete(key)
        n++
      }
    }
    return n
  }

  clear(): void {
    this.#entries.clear()
  }
}
