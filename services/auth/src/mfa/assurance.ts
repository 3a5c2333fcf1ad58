/**
 * How strongly a user authenticated: the `amr` values (RFC 8176) a sign-in records in its login
 * session, and the `acr` (OIDC Core §2) they amount to.
 *
 *  - password alone:                 amr `pwd`                      acr ACR_PASSWORD
 *  - password + TOTP code:           amr `pwd otp mfa`              acr ACR_MFA
 *  - password + recovery code:       amr `pwd otp mfa` (a one-time code written down)
 *  - password + passkey:             amr `pwd hwk|swk user mfa`     acr ACR_PHISHING_RESISTANT
 *  - passkey alone (user verified):  amr `hwk|swk user mfa`         acr ACR_PHISHING_RESISTANT
 *
 * `hwk` for a device-bound passkey, `swk` for a synced (backed-up) one (WebAuthn BS flag).
 * The acr values, weakest first; a stronger one satisfies a request for a weaker one.
 */
export const ACR_PASSWORD = 'urn:gatehouse:acr:password'
/** OpenID PAPE: authentication with two or more factors. */
export const ACR_MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor'
/** OpenID PAPE: no shared secret was given to anyone who could relay it (a passkey). */
export const ACR_PHISHING_RESISTANT = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant'

/** Weakest first: discovery's `acr_values_supported`. */
export const ACR_VALUES = [ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT] as const
export type Acr = (typeof ACR_VALUES)[number]

export const AMR_PASSWORD = ['pwd'] as const
export const AMR_PASSWORD_TOTP = ['pwd', 'otp', 'mfa'] as const
export const AMR_PASSWORD_RECOVERY = ['pwd', 'otp', 'mfa'] as const

/** A passkey's amr: `hwk` (device-bound) or `swk` (synced), `user` (verified), and with a password before it, `pwd`. */
export function passkeyAmr(options: { backedUp: boolean; withPassword: boolean }): string[] {
  return [...(options.withPassword ? ['pwd'] : []), options.backedUp ? 'swk' : 'hwk', 'user', 'mfa']
}

/** The acr a session's amr amounts to. */
export function acrOf(amr: readonly string[]): Acr {
  if (amr.includes('hwk') || amr.includes('swk')) return ACR_PHISHING_RESISTANT
  if (amr.includes('mfa')) return ACR_MFA
  return ACR_PASSWORD
}

export function isAcr(value: string): value is Acr {
  return (ACR_VALUES as readonly string[]).includes(value)
}

/** True when a sign-in with this amr meets `acr` (a stronger acr meets a weaker one). */
export function meetsAcr(amr: readonly string[], acr: Acr): boolean {
  return ACR_VALUES.indexOf(acrOf(amr)) >= ACR_VALUES.indexOf(acr)
}
