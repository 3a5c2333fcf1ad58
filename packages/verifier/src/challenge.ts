import { bearerChallenge, type OAuthError, type OAuthErrorCode } from '@gatehouse/service-kit'
import { MissingToken } from './errors.js'
import { ScopeRequired } from './requirements.js'

export interface AuthErrorResponse {
  statusCode: number
  /** `www-authenticate` when RFC 6750 §3 calls for a challenge. */
  headers: Record<string, string>
  body: { error: OAuthErrorCode; error_description: string }
}

/**
 * The one serializer of the verifier's errors: status, RFC 6750 challenge
 * and `{error, error_description}` body. `detail` (the internal reason) is
 * never part of it.
 */
export function authErrorResponse(err: OAuthError, realm: string): AuthErrorResponse {
  const body = { error: err.code, error_description: err.description }
  if (err instanceof MissingToken) {
    // §3.1: a request without any authentication information gets no error code.
    return { statusCode: 401, headers: { 'www-authenticate': bearerChallenge({ realm }) }, body }
  }
  if (err.code === 'invalid_token' || err.code === 'invalid_request' || err.code === 'insufficient_scope') {
    const scope = err instanceof ScopeRequired ? err.scope : undefined
    const challenge = bearerChallenge({ realm, error: err.code, errorDescription: err.description, scope })
    return { statusCode: err.statusCode, headers: { 'www-authenticate': challenge }, body }
  }
  return { statusCode: err.statusCode, headers: {}, body }
}
