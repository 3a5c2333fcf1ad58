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

/** The parts of a client that decide what a sign-in to it must reach (directory/clients.ts Client). */
export interface AssuranceClient {
  /** Metadata `require_mfa`: a second factor is a condition of every sign-in, not a wish. */
  requireMfa: boolean
}

/** The part of an authorization request that asks for an acr (authorize/authorization-request.ts). */
export interface AssuranceRequest {
  /** The supported `acr_values` asked for, in the client's order of preference (OIDC Core §3.1.2.1). */
  acrValues?: readonly string[]
}

/**
 * The known acr values of an `acr_values` parameter (OIDC Core §3.1.2.1: space-separated, in order
 * of preference), each once; unknown ones are ignored (the parameter is voluntary), so a list of
 * only unknown ones is as if none was asked (an empty array).
 */
export function parseAcrValues(raw: string): Acr[] {
  const out: Acr[] = []
  for (const v of raw.split(' ')) if (isAcr(v) && !out.includes(v)) out.push(v)
  return out
}

/** The stronger of two acr values (null: nothing asked). */
function stronger(a: Acr | null, b: Acr | null): Acr | null {
  if (a === null) return b
  if (b === null) return a
  return ACR_VALUES.indexOf(a) >= ACR_VALUES.indexOf(b) ? a : b
}

/**
 * The weakest acr a sign-in must reach for this client and request; null when anything will do.
 *  - the client's policy: ACR_MFA with `require_mfa`;
 *  - the request's: the first `acr_values` value we support (the client's most preferred one;
 *    OIDC Core §3.1.2.1 lists them in order of preference);
 * and the stronger of the two when both apply (a require_mfa client asking for a passkey gets
 * ACR_PHISHING_RESISTANT; one asking for ACR_PASSWORD still gets ACR_MFA).
 */
export function requiredAcr(client: AssuranceClient, request?: AssuranceRequest): Acr | null {
  const asked = request?.acrValues?.find(isAcr) ?? null
  return stronger(client.requireMfa ? ACR_MFA : null, asked)
}

/**
 * The acr a sign-in cannot go without (the client's policy, never the request's: `acr_values` is
 * voluntary, OIDC Core §3.1.2.1, so a user who cannot reach it still signs in, with a lower acr
 * in the ID token for the client to judge).
 */
export function mandatoryAcr(client: AssuranceClient): Acr | null {
  return client.requireMfa ? ACR_MFA : null
}

/** True when a sign-in with this amr meets `target` (null: there is nothing to meet). */
export function signInMeets(amr: readonly string[], target: Acr | null): boolean {
  return target === null || meetsAcr(amr, target)
}

/**
 * What a sign-in goes on with once a step (the password, a second factor) is done, for a client
 * and its request (`client` null: a sign-in for the device or account page, which asks nothing):
 *  - `complete`: the amr meets requiredAcr, or the shortfall is only of a voluntary `acr_values`
 *    and the user has no second factor to offer: start the session (completeSignIn);
 *  - `second_factor`: the amr falls short and the user has a second factor: ask for it;
 *  - `enrol_required`: the client requires MFA (`require_mfa`) and the user has no second
 *    factor: no session for this client; send the user to the account page to add one.
 * After a second factor, call it again with the new amr: a phishing-resistant request met only by
 * a TOTP code is then `complete` (voluntary); the mandatory ACR_MFA is met by any second factor.
 */
export function nextSignInStep(
  amr: readonly string[],
  client: AssuranceClient | null,
  request: AssuranceRequest | undefined,
  user: { hasSecondFactor: boolean },
): 'complete' | 'second_factor' | 'enrol_required' {
  if (client === null) return 'complete'
  if (signInMeets(amr, requiredAcr(client, request))) return 'complete'
  // One second factor per sign-in: once the amr has `mfa`, a voluntary shortfall is accepted.
  if (user.hasSecondFactor && !amr.includes('mfa')) return 'second_factor'
  return signInMeets(amr, mandatoryAcr(client)) ? 'complete' : 'enrol_required'
}
