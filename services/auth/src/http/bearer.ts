import { OAuthError, bearerChallenge as formatChallenge, type OAuthErrorCode, type OAuthErrorOptions } from '@gatehouse/service-kit'

/**
 * Errors of a Bearer-protected endpoint (/userinfo): the serializer adds the RFC 6750 §3
 * challenge. A request without any token gets a bare challenge (§3.1: no error code then).
 */
export class BearerError extends OAuthError {
  readonly scope: string | undefined
  readonly missing: boolean
  constructor(code: OAuthErrorCode, statusCode: number, description: string, extra: { scope?: string; missing?: boolean } = {}, options: OAuthErrorOptions = {}) {
    super(code, statusCode, description, options)
    this.scope = extra.scope
    this.missing = extra.missing ?? false
  }
}

export const REALM = 'gatehouse'

/** The WWW-Authenticate value for a BearerError; undefined for any other error. */
export function bearerChallenge(err: OAuthError): string | undefined {
  if (!(err instanceof BearerError)) return undefined
  // §3.1: no error code when the request carried no token. Quoting is service-kit's, shared with the verifier.
  if (err.missing) return formatChallenge({ realm: REALM })
  return formatChallenge({ realm: REALM, error: err.code, errorDescription: err.description, scope: err.scope })
}
