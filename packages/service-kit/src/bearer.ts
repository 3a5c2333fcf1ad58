import { InvalidRequest } from './errors.js'

/**
 * RFC 6750 in one place: reading the `Authorization: Bearer` header (§2.1) and
 * writing the `WWW-Authenticate: Bearer` challenge (§3). Both services and the
 * verifier plugin use these, so every Bearer endpoint parses and escapes alike.
 */

/** RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

export const MALFORMED_BEARER_HEADER = 'the Authorization header is malformed'

/**
 * The token of an `Authorization: Bearer <token>` header (the scheme is
 * case-insensitive, RFC 7235 §2.1). Returns null when the header is absent or
 * names another scheme (the request carries no bearer token); throws
 * `invalid_request` when it says Bearer but names no token. RFC 6750 §2.1:
 * `credentials = "Bearer" 1*SP b64token`, so one or more spaces separate the
 * scheme from the token; everything after them is the token, which
 * `assertB64Token` then checks (a second credential fails there). The check is
 * separate so a cache hit can skip it: a cache only ever holds tokens that
 * passed it.
 */
export function extractBearerToken(header: string | undefined): string | null {
  if (header === undefined || header.length === 0) return null
  if (header.length < 6 || header.slice(0, 6).toLowerCase() !== 'bearer') return null
  if (header.length > 6 && header.charCodeAt(6) !== 32) return null // "Bearerxyz": another scheme
  let start = 6
  while (header.charCodeAt(start) === 32) start++
  if (start === header.length) throw new InvalidRequest('the Authorization header names no token', { detail: 'empty_bearer' })
  return header.slice(start)
}

/** Throws `invalid_request` unless `token` is one RFC 6750 §2.1 b64token. */
export function assertB64Token(token: string): void {
  if (!B64TOKEN.test(token)) throw new InvalidRequest(MALFORMED_BEARER_HEADER, { detail: 'malformed_header' })
}

export interface BearerChallengeParams {
  realm: string
  /** RFC 6750 §3.1 code; omitted when the request carried no token at all. */
  error?: string
  errorDescription?: string
  /** §3: the scope the resource needs (space-separated scope-tokens). */
  scope?: string
}

/**
 * RFC 6750 §3: `error`, `error_description` and `scope` "MUST NOT include characters outside
 * %x20-21 / %x23-5B / %x5D-7E", so `"`, `\`, controls and non-ASCII cannot be escaped there and
 * are dropped. (Node also refuses a header with characters above U+00FF: dropping keeps a
 * challenge from ever turning into a 500.)
 */
function restricted(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')}"`
}

/** `realm` is a plain RFC 7230 §3.2.6 quoted-string: `"` and `\` become quoted-pairs; controls and non-ASCII are dropped. */
function quotedString(value: string): string {
  return `"${value.replace(/[^\x20-\x7E]/g, '').replace(/["\\]/g, '\\$&')}"`
}

/** The `WWW-Authenticate` value: `Bearer realm="…"[, error="…", error_description="…"][, scope="…"]`. */
export function bearerChallenge(params: BearerChallengeParams): string {
  let value = `Bearer realm=${quotedString(params.realm)}`
  if (params.error !== undefined) value += `, error=${restricted(params.error)}`
  if (params.errorDescription !== undefined) value += `, error_description=${restricted(params.errorDescription)}`
  if (params.scope !== undefined) value += `, scope=${restricted(params.scope)}`
  return value
}
