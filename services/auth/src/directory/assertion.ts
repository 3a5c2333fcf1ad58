import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWK } from 'jose'
import type { AssertionVerifier } from './client-auth.js'
import type { Client } from './clients.js'
import type { ReplayStore } from './replay.js'

/**
 * `private_key_jwt` client authentication (RFC 7523 §3, OIDC Core §9), for /token, /revoke and
 * /introspect alike:
 *  - signed by a key of the client's configured JWK Set, with RS256, PS256 or ES256 only (never
 *    `none` or HMAC; `jku`, `x5u` and embedded `jwk` headers are refused, not followed);
 *  - `iss` = `sub` = the client id (§3 items 1–2);
 *  - `aud` is this authorization server's issuer identifier and nothing else: a string, or an
 *    array holding it alone (RFC 7523 §3 item 3 as updated by draft-ietf-oauth-rfc7523bis §4: the
 *    token endpoint URL, or another audience beside the issuer, let an assertion made for one
 *    server be replayed at another that shares an endpoint URL or is named beside it);
 *  - `exp` required and at most five minutes ahead (§3 item 4: a short-lived assertion limits
 *    how long a stolen one is useful, and how long its jti must be remembered);
 *  - `jti` required and used once (§3 item 7), remembered until `exp`.
 */
export const ASSERTION_ALGS = ['RS256', 'PS256', 'ES256'] as const
const MAX_LIFETIME_S = 300
const CLOCK_TOLERANCE_S = 30
const MAX_ASSERTION_LENGTH = 8192

export interface AssertionVerifierOptions {
  issuer: string
  replay: ReplayStore
  /** ms since the epoch */
  clock: () => number
}

export function createAssertionVerifier(options: AssertionVerifierOptions): AssertionVerifier {
  const keySets = new WeakMap<Client, ReturnType<typeof createLocalJWKSet>>()
  const keySetOf = (client: Client): ReturnType<typeof createLocalJWKSet> | null => {
    if (client.jwks === null) return null
    let set = keySets.get(client)
    if (set === undefined) {
      set = createLocalJWKSet({ keys: client.jwks.keys as JWK[] })
      keySets.set(client, set)
    }
    return set
  }

  return async (client, assertion) => {
    if (typeof assertion !== 'string' || assertion.length > MAX_ASSERTION_LENGTH) return false
    let payload
    try {
      const keys = keySetOf(client)
      if (keys === null) return false
      const header = decodeProtectedHeader(assertion)
      if (header.jku !== undefined || header.x5u !== undefined || header.jwk !== undefined) return false
      const now = options.clock()
      ;({ payload } = await jwtVerify(assertion, keys, {
        algorithms: [...ASSERTION_ALGS],
        issuer: client.id,
        subject: client.id,
        currentDate: new Date(now),
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['exp', 'jti'],
      }))
      const aud = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud
      if (aud !== options.issuer) return false
      if (payload.exp! > Math.floor(now / 1000) + MAX_LIFETIME_S) return false
    } catch (err) {
      // Any JOSE failure (bad signature, unknown key, wrong alg or claims, malformed) is a
      // failed authentication; anything else is a real fault and surfaces.
      if (err instanceof errors.JOSEError || err instanceof TypeError || err instanceof SyntaxError) return false
      throw err
    }
    const jti = payload.jti
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) return false
    // The store may throw StoreUnavailable: that is a 503, not a failed authentication.
    return await options.replay.claim(client.id, jti, (payload.exp! + CLOCK_TOLERANCE_S) * 1000)
  }
}
