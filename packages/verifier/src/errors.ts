import { InvalidToken, OAuthError, TemporarilyUnavailable } from '@gatehouse/service-kit'

/**
 * Why a token was refused. Logged (the `detail` of the error) and counted,
 * never sent: every one of these reaches the client as the same
 * `invalid_token` (RFC 6750 §3.1), so a caller cannot probe which check failed.
 */
export type InvalidTokenReason =
  | 'malformed'
  | 'oversized'
  | 'alg_not_allowed'
  | 'forbidden_header'
  | 'missing_kid'
  | 'unknown_kid'
  | 'unusable_key'
  | 'bad_signature'
  | 'wrong_typ'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'missing_claim'
  | 'invalid_claim'
  | 'revoked'
  | 'verification_error'

export const INVALID_TOKEN_DESCRIPTION = 'the access token is invalid'

export function invalidToken(reason: InvalidTokenReason, cause?: unknown): OAuthError {
  return new InvalidToken(INVALID_TOKEN_DESCRIPTION, { detail: reason, cause })
}

/** No key can be fetched to check a token that could be valid: 503, never a silent 401 (DESIGN §4). */
export function keysUnavailable(detail: string): OAuthError {
  return new TemporarilyUnavailable('the access token cannot be checked right now', { detail })
}

/**
 * The request carries no access token at all. RFC 6750 §3.1: the challenge
 * then names no error code; the JSON body still says `invalid_token`.
 */
export class MissingToken extends OAuthError {
  constructor() {
    super('invalid_token', 401, 'an access token is required', { detail: 'missing' })
    this.name = 'MissingToken'
  }
}

/**
 * A bearer token where only a DPoP-bound token with a proof will do (RFC 9449 §7.1; option
 * `dpop.required`, or a route's `dpop: 'required'`): 401 `invalid_token` with a DPoP challenge only.
 */
export class DpopRequired extends OAuthError {
  constructor() {
    super('invalid_token', 401, 'this resource requires a DPoP-bound access token and a DPoP proof', { detail: 'dpop_required' })
    this.name = 'DpopRequired'
  }
}
