import { ANY_AUDIENCE, AccessTokenRulebook, type AccessTokenClaims } from '@gatehouse/verifier'
import type { AuthDeps } from '../runtime/deps.js'
import { localKeySet } from './id-token.js'
import { confirmationKey } from '../dpop/proofs.js'

/**
 * The claims of one of our access tokens that is live right now (RFC 9068 §2.2); `cnf.jkt` when
 * it is bound to a DPoP key (RFC 9449 §6.1).
 */
export type LiveAccessToken = AccessTokenClaims & { scope: string; cnf?: { jkt: string } }

const MAX_TOKEN_LENGTH = 8192

/**
 * Checks access tokens by the verifier's rulebook (`@gatehouse/verifier`, the same checks a
 * resource server makes) with our own in-process key ring: RS256, `typ` at+jwt, our `iss`, `exp`
 * without leeway, the RFC 9068 claims. Any audience: /introspect judges `aud` against its caller
 * and /userinfo serves any token with the openid scope. Then what only the issuer can know: the
 * family the token descends from (`sid`) is not revoked. The checker resolves to null for
 * anything that is not a live access token; store failures surface (StoreUnavailable → 503).
 */
export function accessTokenChecker(deps: AuthDeps): (token: string) => Promise<LiveAccessToken | null> {
  // The key ring rotates: look the key set up per token (localKeySet caches it per snapshot).
  const rulebook = new AccessTokenRulebook((header, token) => localKeySet(deps.keys)(header, token), {
    issuer: deps.config.issuer,
    audience: ANY_AUDIENCE,
    algorithms: ['RS256'],
    clockTolerance: 0,
    // Another replica may have issued the token a moment "later" by its clock (iat is in seconds).
    issuedAtLeeway: 5,
    maxTokenLength: MAX_TOKEN_LENGTH,
  })
  return async (token) => {
    let claims: AccessTokenClaims
    try {
      ;({
        auth: { claims },
      } = await rulebook.verify(token, deps.clock()))
    } catch {
      return null // always invalid_token: the local key set cannot be unavailable
    }
    if (typeof claims.scope !== 'string') return null
    // A confirmation we cannot read is no token of ours: never serve it as unbound.
    if (confirmationKey(claims) === null) return null
    if (claims.sid !== undefined) {
      const family = await deps.families.get(claims.sid)
      if (family === null || family.revoked) return null
    }
    return claims as LiveAccessToken
  }
}
