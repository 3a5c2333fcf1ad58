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
 * function of (family, generation). Nothing secret is stored at all: the key
 * lives only in the services' memory (derived from COOKIE_SECRET).
 */
export interface ParsedRefreshToken {
  familyId: string
  generation: number
}

const FAMILY_ID = /^[A-Za-z0-9_-]{22}$/
const GENERATION = /^(0|[1-9]\d{0,8})$/
const MAC = /^[A-Za-z0-9_-]{43}$/

export class RefreshTokenCodec {
  readonly #key: Buffer

  constructor(key: Buffer) {
    if (key.length < 32) throw new Error('refresh token key must be at least 32 bytes')
    this.#key = key
  }

  /** Derives the MAC key from the service secret (COOKIE_SECRET), so every replica agrees. */
  static fromSecret(secret: string): RefreshTokenCodec {
    const key = Buffer.from(hkdfSync('sha256', secret, 'gatehouse', 'refresh-token-mac v1', 32))
    return new RefreshTokenCodec(key)
  }

  static newFamilyId(): string {
    return randomBytes(16).toString('base64url')
  }

  mint(familyId: string, generation: number): string {
    return `${familyId}.${generation}.${this.#mac(familyId, generation).toString('base64url')}`
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
    const expected = Buffer.from(this.#mac(familyId, generation).toString('base64url'))
    const given = Buffer.from(mac)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
    return { familyId, generation }
  }

  #mac(familyId: string, generation: number): Buffer {
    return createHmac('sha256', this.#key).update(`${familyId}.${generation}`).digest()
  }
}
