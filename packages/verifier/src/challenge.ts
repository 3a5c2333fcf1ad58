import { bearerChallenge, dpopChallenge, type OAuthError, type OAuthErrorCode } from '@gatehouse/service-kit'
import { DpopRequired, MissingToken } from './errors.js'
import { AcrRequired, ScopeRequired } from './requirements.js'

export interface AuthErrorResponse {
  statusCode: number
  /** `www-authenticate` when RFC 6750 §3 / RFC 9449 §7.1 call for a challenge; `dpop-nonce` with `use_dpop_nonce`. */
  headers: Record<string, string>
  body: { error: OAuthErrorCode; error_description: string }
}

/** What the challenge depends on besides the error: how the token came, and what this route accepts. */
export interface ChallengeContext {
  /** The scheme the request presented its token with; null when it carried none. */
  scheme: 'Bearer' | 'DPoP' | null
  /** The proof algorithms accepted (RFC 9449 §7.1 `algs`). */
  dpopAlgs: readonly string[]
  /** Bearer tokens are refused here (DPoP required): no Bearer challenge is offered. */
  dpopOnly: boolean
  /** The server nonce to send (`DPoP-Nonce`) when nonces are on. */
  nonce?: string
}

const BEARER_ONLY: ChallengeContext = { scheme: 'Bearer', dpopAlgs: [], dpopOnly: false }

/**
 * The one serializer of the verifier's errors: status, challenge and `{error, error_description}`
 * body. `detail` (the internal reason) is never part of it.
 *
 * The challenge follows the scheme the request used: `Bearer` (RFC 6750 §3) for a Bearer request,
 * `DPoP algs="…"` (RFC 9449 §7.1) for a DPoP request. A request without a token gets both (one
 * header, comma-separated, as RFC 9449 §7.2's example), or DPoP alone where Bearer is refused.
 * `invalid_dpop_proof` and `use_dpop_nonce` are 401 at a resource server (§7.1, §9), though
 * their error classes say 400 (the token endpoint's status).
 */
export function authErrorResponse(err: OAuthError, realm: string, ctx: ChallengeContext = BEARER_ONLY): AuthErrorResponse {
  const body = { error: err.code, error_description: err.description }
  const dpop = (error?: { code: string; description: string; scope?: string; acrValues?: string }): string =>
    dpopChallenge({ algs: ctx.dpopAlgs, realm, error: error?.code, errorDescription: error?.description, scope: error?.scope, acrValues: error?.acrValues })
  if (err instanceof MissingToken) {
    // RFC 6750 §3.1: a request without any authentication information gets no error code.
    const challenges = ctx.dpopOnly ? [dpop()] : ctx.dpopAlgs.length === 0 ? [bearerChallenge({ realm })] : [bearerChallenge({ realm }), dpop()]
    return { statusCode: 401, headers: { 'www-authenticate': challenges.join(', ') }, body }
  }
  if (err.code === 'invalid_dpop_proof' || err.code === 'use_dpop_nonce') {
    const headers: Record<string, string> = { 'www-authenticate': dpop({ code: err.code, description: err.description }) }
    if (err.code === 'use_dpop_nonce' && ctx.nonce !== undefined) headers['dpop-nonce'] = ctx.nonce
    return { statusCode: 401, headers, body }
  }
  if (err.code === 'invalid_token' || err.code === 'invalid_request' || err.code === 'insufficient_scope' || err.code === 'insufficient_user_authentication') {
    const scope = err instanceof ScopeRequired ? err.scope : undefined
    // RFC 9470 §3: the challenge names the acr values that would do.
    const acrValues = err instanceof AcrRequired ? err.acrValues : undefined
    const error = { code: err.code, description: err.description, scope, acrValues }
    let challenge: string
    if (ctx.scheme === 'DPoP' || ctx.dpopOnly || err instanceof DpopRequired) challenge = dpop(error)
    else {
      challenge = bearerChallenge({ realm, error: err.code, errorDescription: err.description, scope, acrValues })
      // A DPoP-bound token sent as Bearer: say how it must be sent (RFC 9449 §7.2).
      if (err.detail === 'dpop_downgrade') challenge += `, ${dpop()}`
    }
    return { statusCode: err.statusCode, headers: { 'www-authenticate': challenge }, body }
  }
  return { statusCode: err.statusCode, headers: {}, body }
}
