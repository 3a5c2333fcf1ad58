/**
 * The OAuth error model shared by both services (RFC 6749 §5.2, RFC 6750 §3.1,
 * RFC 7009, RFC 7662). Checks throw these; exactly one serializer per service
 * writes them. `description` is public; `detail` is only ever logged.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'access_denied'
  | 'unsupported_response_type'
  | 'login_required'
  | 'invalid_token'
  | 'insufficient_scope'
  /** RFC 9470 §3: the token's authentication (acr, auth_time) does not meet the resource's needs. */
  | 'insufficient_user_authentication'
  | 'unsupported_token_type'
  /** RFC 8707 §2: a `resource` that is malformed, unknown or not allowed. */
  | 'invalid_target'
  | 'temporarily_unavailable'
  | 'server_error'
  /** RFC 9449 §5, §7.1, §8: a missing or bad DPoP proof; the server requires a nonce. */
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  /** RFC 8628 §3.5: the device authorization grant's polling answers. */
  | 'authorization_pending'
  | 'slow_down'
  | 'expired_token'
  /** 404 for a path no route serves: not an RFC code, but the same JSON shape. */
  | 'not_found'

export interface OAuthErrorOptions {
  /** Internal reason, logged, never sent (e.g. the jose error code). */
  detail?: string
  cause?: unknown
}

export class OAuthError extends Error {
  readonly code: OAuthErrorCode
  readonly statusCode: number
  readonly description: string
  readonly detail: string | undefined

  constructor(code: OAuthErrorCode, statusCode: number, description: string, options: OAuthErrorOptions = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'OAuthError'
    this.code = code
    this.statusCode = statusCode
    this.description = description
    this.detail = options.detail
  }

  /** The RFC 6749 §5.2 body. */
  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.code, error_description: this.description }
  }
}

type Sub = new (description?: string, options?: OAuthErrorOptions) => OAuthError

function errorClass(code: OAuthErrorCode, statusCode: number, fallback: string): Sub {
  return class extends OAuthError {
    constructor(description: string = fallback, options: OAuthErrorOptions = {}) {
      super(code, statusCode, description, options)
    }
  }
}

export const InvalidRequest = errorClass('invalid_request', 400, 'the request is malformed')
/** 401; the serializer adds `WWW-Authenticate: Basic` when the client tried HTTP Basic (RFC 6749 §5.2). */
export const InvalidClient = errorClass('invalid_client', 401, 'client authentication failed')
export const InvalidGrant = errorClass('invalid_grant', 400, 'the grant is invalid, expired or revoked')
export const UnauthorizedClient = errorClass('unauthorized_client', 400, 'the client may not use this grant type')
export const UnsupportedGrantType = errorClass('unsupported_grant_type', 400, 'the grant type is not supported')
export const InvalidScope = errorClass('invalid_scope', 400, 'the requested scope is invalid')
export const AccessDenied = errorClass('access_denied', 403, 'access denied')
export const UnsupportedResponseType = errorClass('unsupported_response_type', 400, 'the response type is not supported')
export const LoginRequired = errorClass('login_required', 400, 'the user must log in')
export const InvalidToken = errorClass('invalid_token', 401, 'the access token is invalid')
export const InsufficientScope = errorClass('insufficient_scope', 403, 'the token lacks the required scope')
/** RFC 9470 §3: 401; the challenge names the `acr_values` the client should ask for. */
export const InsufficientUserAuthentication = errorClass('insufficient_user_authentication', 401, 'a stronger authentication of the user is required')
export const UnsupportedTokenType = errorClass('unsupported_token_type', 400, 'the token type is not supported')
export const InvalidTarget = errorClass('invalid_target', 400, 'the requested resource is invalid, unknown or not allowed')
export const TemporarilyUnavailable = errorClass('temporarily_unavailable', 503, 'the service is temporarily unavailable')
export const ServerError = errorClass('server_error', 500, 'internal server error')
/** RFC 9449 §5 (token endpoint, 400) and §7.1 (resource servers answer 401 with a `DPoP` challenge). */
export const InvalidDpopProof = errorClass('invalid_dpop_proof', 400, 'the DPoP proof is missing or invalid')
/** RFC 9449 §8, §9: the proof must carry the nonce the server sends in `DPoP-Nonce`. */
export const UseDpopNonce = errorClass('use_dpop_nonce', 400, 'the DPoP proof must carry the server nonce')
/** RFC 8628 §3.5: the user has not yet approved or denied the device's request; keep polling. */
export const AuthorizationPending = errorClass('authorization_pending', 400, 'the authorization request is still pending')
/** RFC 8628 §3.5: still pending, and the client polls too fast: the interval goes up by 5 seconds. */
export const SlowDown = errorClass('slow_down', 400, 'polling too fast: wait longer between requests')
/** RFC 8628 §3.5: the device code expired; start again with a new device authorization request. */
export const ExpiredToken = errorClass('expired_token', 400, 'the device code has expired')
export const NotFound = errorClass('not_found', 404, 'no such route')

export function isOAuthError(err: unknown): err is OAuthError {
  return err instanceof OAuthError
}
