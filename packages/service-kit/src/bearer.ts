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
  const presented = extractAccessToken(header)
  return presented === null || presented.scheme !== 'Bearer' ? null : presented.token
}

/** How an access token was presented: `Bearer` (RFC 6750) or `DPoP` (RFC 9449 §7.1). */
export interface PresentedAccessToken {
  scheme: 'Bearer' | 'DPoP'
  token: string
}

/**
 * The token of an `Authorization: Bearer <token>` or `Authorization: DPoP <token>` header, with
 * its scheme (case-insensitive, RFC 7235 §2.1); both are `scheme 1*SP token68`, so they parse
 * alike. Null when the header is absent or names another scheme; `invalid_request` when the
 * scheme names no token. The token is checked with `assertB64Token` separately (see above).
 */
export function extractAccessToken(header: string | undefined): PresentedAccessToken | null {
  if (header === undefined || header.length === 0) return null
  const c = header.charCodeAt(0) | 0x20
  const scheme = c === 0x62 /* b */ ? 'Bearer' : c === 0x64 /* d */ ? 'DPoP' : null
  if (scheme === null) return null
  const n = scheme.length
  if (header.length < n || header.slice(0, n).toLowerCase() !== scheme.toLowerCase()) return null
  if (header.length > n && header.charCodeAt(n) !== 32) return null // "Bearerxyz": another scheme
  let start = n
  while (header.charCodeAt(start) === 32) start++
  if (start === header.length) throw new InvalidRequest('the Authorization header names no token', { detail: `empty_${scheme.toLowerCase()}` })
  return { scheme, token: header.slice(start) }
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
  /** RFC 9470 §3: the acr values the resource accepts (space-separated), with `insufficient_user_authentication`. */
  acrValues?: string
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
  if (params.acrValues !== undefined) value += `, acr_values=${restricted(params.acrValues)}`
  return value
}

export interface DpopChallengeParams {
  /** RFC 9449 §7.1: the proof algorithms the server accepts. */
  algs: readonly string[]
  realm?: string
  error?: string
  errorDescription?: string
  scope?: string
  /** RFC 9470 §3 (see BearerChallengeParams). */
  acrValues?: string
}

/** RFC 9449 §7.1: `DPoP algs="…"[, realm=…][, error="…", error_description="…"][, scope="…"]`. */
export function dpopChallenge(params: DpopChallengeParams): string {
  let value = `DPoP algs=${restricted(params.algs.join(' '))}`
  if (params.realm !== undefined) value += `, realm=${quotedString(params.realm)}`
  if (params.error !== undefined) value += `, error=${restricted(params.error)}`
  if (params.errorDescription !== undefined) value += `, error_description=${restricted(params.errorDescription)}`
  if (params.scope !== undefined) value += `, scope=${restricted(params.scope)}`
  if (params.acrValues !== undefined) value += `, acr_values=${restricted(params.acrValues)}`
  return value
}
