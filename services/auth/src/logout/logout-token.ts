import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import type { KeyRing } from '../keys/signing-keys.js'

/** OIDC Back-Channel Logout 1.0 §2.4: the event a logout token carries. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'

/** seconds: DESIGN §10.1, a logout token lives at most 2 minutes. */
export const LOGOUT_TOKEN_TTL = 120

export interface LogoutTokenContext {
  issuer: string
  keys: KeyRing
  /** ms since the epoch */
  clock: () => number
}

/**
 * A logout token (Back-Channel Logout §2.4), signed with the active key like an ID token: header
 * `typ: logout+jwt` (§2.4 recommends explicit typing, so it can never pass for an ID token),
 * claims `iss`, `aud` (the client), `iat`, `exp`, `jti`, `events`, `sid`, `sub`, and never a
 * `nonce` (§2.4 forbids it, again so it cannot be replayed as an ID token).
 */
export async function signLogoutToken(ctx: LogoutTokenContext, t: { clientId: string; sid: string; sub: string }): Promise<string> {
  const { active } = ctx.keys.current()
  const iat = Math.floor(ctx.clock() / 1000)
  return await new SignJWT({ events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, sid: t.sid })
    .setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid: active.kid })
    .setIssuer(ctx.issuer)
    .setSubject(t.sub)
    .setAudience(t.clientId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + LOGOUT_TOKEN_TTL)
    .setJti(randomBytes(16).toString('base64url'))
    .sign(active.privateKey)
}
