import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Refresh tokens are `<familyId>.<generation>.<mac>` where
 * mac = HMAC-SHA256(key, "<familyId>.<generation>") (256 bits, base64url).
 *
 * Why: the store then keeps only the current generation number per family,
 * not a hash per issued token, so Redis memory does not grow with rotations
 * (DESIGN §5), yet every token the family ever issued is recognised (any
 * generation below the current one with a valid MAC is a spent token), a
 * forged token that merely names a family fails the MAC and never reaches the
 * store, and a retry gets the same successor because the successor is a pure
 * function of (family, generation). Nothing secret is stored at all: the keys
 * live only in the services' memory (derived from REFRESH_TOKEN_SECRET). The
 * first key MACs new tokens; every key verifies, so the secret rotates without
 * ending every session (a token minted under an older key rotates into one
 * under the first).
 */
export interface ParsedRefreshToken {
  familyId: string
  generation: number
}

const FAMILY_ID = /^[A-Za-z0-9_-]{22}$/
const GENERATION = /^(0|[1-9]\d{0,8})$/
const MAC = /^[A-Za-z0-9_-]{43}$/

export class RefreshTokenCodec {
  readonly #keys: readonly Buffer[]

  constructor(key: Buffer | readonly Buffer[]) {
    const keys = Buffer.isBuffer(key) ? [key] : [...key]
    if (keys.length === 0 || keys.some((k) => k.length < 32)) throw new Error('refresh token keys must be at least 32 bytes')
    this.#keys = keys
  }

  /** Derives the MAC key from a service secret, so every replica agrees. */
  static fromSecret(secret: string): RefreshTokenCodec {
    return RefreshTokenCodec.fromSecrets([secret])
  }

  /** One key per secret (REFRESH_TOKEN_SECRET's list): the first MACs, every one verifies. */
  static fromSecrets(secrets: readonly string[]): RefreshTokenCodec {
    return new RefreshTokenCodec(secrets.map((secret) => Buffer.from(hkdfSync('sha256', secret, 'gatehouse', 'refresh-token-mac v1', 32))))
  }

  static newFamilyId(): string {
    return randomBytes(16).toString('base64url')
  }

  mint(familyId: string, generation: number): string {
    return `${familyId}.${generation}.${this.#mac(this.#keys[0]!, familyId, generation).toString('base64url')}`
  }

  /** The family and generation of a genuine token, or null for anything malformed or forged. */
  parse(token: string): ParsedRefreshToken | null {
    if (typeof token !== 'string' || token.length > 80) return null
    const parts = token.split('.')
    if (parts.length !== 3) return null
    const [familyId, gen, mac] = parts as [string, string, string]
    if (!FAMILY_ID.test(familyId) || !GENERATION.test(gen) || !MAC.test(mac)) return null
    const generation = Number(gen)
    // Compare the encoded text, not decoded bytes: the last of 43 base64url characters carries 2
    // unused bits, so decoding would accept 4 spellings of one MAC (a non-canonical token string).
    const given = Buffer.from(mac)
    let valid = false
    for (const key of this.#keys) {
      const expected = Buffer.from(this.#mac(key, familyId, generation).toString('base64url'))
      // Every key is tried (no early exit), each compared in constant time.
      if (given.length === expected.length && timingSafeEqual(given, expected)) valid = true
    }
    return valid ? { familyId, generation } : null
  }

  #mac(key: Buffer, familyId: string, generation: number): Buffer {
    return createHmac('sha256', key).update(`${familyId}.${generation}`).digest()
  }
}
