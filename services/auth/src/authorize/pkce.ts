import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * PKCE, S256 only (RFC 7636; DESIGN §3). `plain` is refused: it protects nothing against an
 * attacker who can read the authorization request.
 */

/** RFC 7636 §4.1: 43–128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~". */
const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/
/** RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is always 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/

export function isCodeVerifier(v: string): boolean {
  return VERIFIER.test(v)
}

export function isS256Challenge(v: string): boolean {
  return S256_CHALLENGE.test(v)
}

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url')
}

/** RFC 7636 §4.6, compared in constant time. */
export function verifierMatches(verifier: string, challenge: string): boolean {
  const a = Buffer.from(s256(verifier))
  const b = Buffer.from(challenge)
  return a.length === b.length && timingSafeEqual(a, b)
}
