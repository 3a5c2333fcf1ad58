import type { OAuthError, OAuthErrorCode } from '@gatehouse/service-kit'
import { MissingToken } from './errors.js'
import { ScopeRequired } from './requirements.js'

export interface AuthErrorResponse {
  statusCode: number
  /** `www-authenticate` when RFC 6750 §3 calls for a challenge. */
  headers: Record<string, string>
  body: { error: OAuthErrorCode; error_description: string }
}

/** RFC 6750 §3: quoted-string values, whose allowed characters exclude `"` and `\`. */
function quoted(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')}"`
}

/**
 * The one serializer of the verifier's errors: status, RFC 6750 challenge
 * and `{error, error_description}` body. `detail` (the internal reason) is
 * never part of it.
 */
export function authErrorResponse(err: OAuthError, realm: string): AuthErrorResponse {
  const body = { error: err.code, error_description: err.description }
  const base = `Bearer realm=${quoted(realm)}`
  if (err instanceof MissingToken) {
    // §3.1: a request without any authentication information gets no error code.
    return { statusCode: 401, headers: { 'www-authenticate': base }, body }
  }
  if (err.code === 'invalid_token' || err.code === 'invalid_request') {
    const challenge = `${base}, error=${quoted(err.code)}, error_description=${quoted(err.description)}`
    return { statusCode: err.statusCode, headers: { 'www-authenticate': challenge }, body }
  }
  if (err.code === 'insufficient_scope') {
    const scope = err instanceof ScopeRequired ? `, scope=${quoted(err.scope)}` : ''
    const challenge = `${base}, error="insufficient_scope", error_description=${quoted(err.description)}${scope}`
    return { statusCode: 403, headers: { 'www-authenticate': challenge }, body }
  }
  return { statusCode: err.statusCode, headers: {}, body }
}
