import { InvalidRequest } from '@gatehouse/service-kit'

/** RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/**
 * The token of an `Authorization: Bearer <token>` header (the scheme is
 * case-insensitive, RFC 7235 §2.1). Returns null when the header is absent or
 * names another scheme (the request carries no bearer token); throws
 * `invalid_request` when it says Bearer but the rest is not one token.
 * The token's characters are checked by `assertB64Token`, which only the
 * uncached path needs: the cache only ever holds tokens that passed it.
 */
export function extractBearerToken(header: string | undefined): string | null {
  if (header === undefined || header.length === 0) return null
  if (!header.startsWith('Bearer ')) {
    if (header.length < 6 || header.slice(0, 6).toLowerCase() !== 'bearer') return null
    if (header.length === 6 || header.charCodeAt(6) !== 32) {
      // "Bearer" alone, or "Bearerxyz"
      if (header.length === 6) throw new InvalidRequest('the Authorization header names no token', { detail: 'empty_bearer' })
      return null
    }
  }
  const token = header.slice(7)
  if (token.length === 0) throw new InvalidRequest('the Authorization header names no token', { detail: 'empty_bearer' })
  return token
}

export function assertB64Token(token: string): void {
  if (!B64TOKEN.test(token)) throw new InvalidRequest('the Authorization header is malformed', { detail: 'malformed_header' })
}
