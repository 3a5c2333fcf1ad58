import { createHash } from 'node:crypto'
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, SignJWT, type JWTPayload } from 'jose'
import type { KeyRing, KeySetSnapshot } from '../keys/signing-keys.js'
import { acrOf } from '../mfa/assurance.js'

/** What an ID token says (OIDC Core §2, §3.1.3.6). */
export interface IdTokenInput {
  sub: string
  /** The `aud`: the client the token is for. */
  clientId: string
  /** seconds since the epoch */
  authTime: number
  nonce?: string
  /** The login session (OIDC Front-Channel Logout §3); absent when there is none (password grant). */
  sid?: string
  /** The access token issued with it, for `at_hash`. */
  accessToken?: string
  /**
   * How the user authenticated (RFC 8176): the `amr` claim, and the `acr` it amounts to
   * (mfa/assurance.ts acrOf; OIDC Core §2). Absent when unknown: neither claim.
   */
  amr?: readonly string[] | undefined
}

/** OIDC Core §3.1.3.6: the left half of SHA-256 of the access token's ASCII, base64url. */
export function atHash(accessToken: string): string {
  const d = createHash('sha256').update(accessToken, 'ascii').digest()
  return d.subarray(0, d.length / 2).toString('base64url')
}

export interface IdTokenContext {
  issuer: string
  keys: KeyRing
  /** seconds; the same lifetime as the access token issued with it */
  ttlSeconds: number
  /** ms since the epoch */
  clock: () => number
}

/** Signs an ID token with the active key (RS256, the one value discovery advertises). */
export async function signIdToken(ctx: IdTokenContext, c: IdTokenInput): Promise<string> {
  const { active } = ctx.keys.current()
  const iat = Math.floor(ctx.clock() / 1000)
  const payload: JWTPayload & Record<string, unknown> = { auth_time: c.authTime }
  if (c.nonce !== undefined) payload.nonce = c.nonce
  if (c.sid !== undefined) payload.sid = c.sid
  if (c.accessToken !== undefined) payload.at_hash = atHash(c.accessToken)
  if (c.amr !== undefined && c.amr.length > 0) {
    payload.amr = [...c.amr]
    payload.acr = acrOf(c.amr)
  }
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: active.kid })
    .setIssuer(ctx.issuer)
    .setSubject(c.sub)
    .setAudience(c.clientId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ctx.ttlSeconds)
    .sign(active.privateKey)
}

const jwksCache = new WeakMap<KeySetSnapshot, ReturnType<typeof createLocalJWKSet>>()

/** A local JWKS over the current key set, built once per snapshot. */
export function localKeySet(keys: KeyRing): ReturnType<typeof createLocalJWKSet> {
  const snap = keys.current()
  let set = jwksCache.get(snap)
  if (set === undefined) {
    set = createLocalJWKSet(snap.jwks)
    jwksCache.set(snap, set)
  }
  return set
}

/**
 * Checks an `id_token_hint` (OIDC RP-Initiated Logout §2): signed by one of our keys, issued by
 * us, and an ID token rather than an access token. Expiry is deliberately not checked: logout
 * typically comes long after the ID token was issued, and the hint only names the session and
 * the client; it grants nothing.
 * Returns the claims, or null for anything else.
 */
export async function verifyIdTokenHint(keys: KeyRing, issuer: string, hint: string): Promise<{ sub: string; aud: string[]; sid?: string } | null> {
  if (hint.length > 8192) return null
  try {
    const header = decodeProtectedHeader(hint)
    if (header.alg !== 'RS256' || header.typ === 'at+jwt' || header.typ === 'application/at+jwt') return null
    const { payload } = await compactVerify(hint, localKeySet(keys), { algorithms: ['RS256'] })
    const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>
    if (claims.iss !== issuer || typeof claims.sub !== 'string') return null
    const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === 'string') : []
    if (aud.length === 0) return null
    const out: { sub: string; aud: string[]; sid?: string } = { sub: claims.sub, aud }
    if (typeof claims.sid === 'string') out.sid = claims.sid
    return out
  } catch {
    return null
  }
}
