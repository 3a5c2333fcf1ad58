import { OAuthError, bearerChallenge as formatChallenge, dpopChallenge, type OAuthErrorCode, type OAuthErrorOptions } from '@gatehouse/service-kit'
import { DPOP_ALGORITHMS } from '@gatehouse/verifier'

/**
 * Errors of a Bearer-protected endpoint (/userinfo): the serializer adds the RFC 6750 §3
 * challenge, or the RFC 9449 §7.1 `DPoP` challenge when the token was presented with the DPoP
 * scheme. A request without any token gets a bare challenge (§3.1: no error code then).
 */
export class BearerError extends OAuthError {
  readonly scope: string | undefined
  readonly missing: boolean
  readonly scheme: 'Bearer' | 'DPoP'
  constructor(
    code: OAuthErrorCode,
    statusCode: number,
    description: string,
    extra: { scope?: string; missing?: boolean; scheme?: 'Bearer' | 'DPoP' } = {},
    options: OAuthErrorOptions = {},
  ) {
    super(code, statusCode, description, options)
    this.scope = extra.scope
    this.missing = extra.missing ?? false
    this.scheme = extra.scheme ?? 'Bearer'
  }
}

export const REALM = 'gatehouse'

/** The WWW-Authenticate value for a BearerError; undefined for any other error. */
export function bearerChallenge(err: OAuthError): string | undefined {
  if (!(err instanceof BearerError)) return undefined
  // §3.1: no error code when the request carried no token. Quoting is service-kit's, shared with the verifier.
  if (err.missing) return formatChallenge({ realm: REALM })
  if (err.scheme === 'DPoP') return dpopChallenge({ algs: DPOP_ALGORITHMS, realm: REALM, error: err.code, errorDescription: err.description, scope: err.scope })
  return formatChallenge({ realm: REALM, error: err.code, errorDescription: err.description, scope: err.scope })
}
