import type { JWTPayload } from 'jose'
import { invalidToken } from './errors.js'

/** RFC 9068 access-token claims as Gatehouse issues them (DESIGN §3). */
export interface AccessTokenClaims extends JWTPayload {
  iss: string
  sub: string
  aud: string | string[]
  exp: number
  iat: number
  jti: string
  client_id: string
  scope?: string
  roles?: string[]
  sid?: string
  auth_time?: number
}

/**
 * `user`: a token issued to a client on behalf of a user. `service`: a
 * client_credentials token, where the client is the subject (`sub ===
 * client_id`) and there is no user: no `roles`, `sid` or `auth_time`.
 */
export type PrincipalKind = 'user' | 'service'

/** What a verified request carries as `request.auth`. Frozen: it is shared by every request made with the token. */
export interface AuthContext {
  readonly subject: string
  readonly clientId: string
  readonly scopes: readonly string[]
  readonly roles: readonly string[]
  /** The refresh-token family / session the token descends from; absent for service tokens. */
  readonly sid: string | undefined
  readonly kind: PrincipalKind
  /** `exp`, seconds since the epoch. */
  readonly expiresAt: number
  readonly claims: Readonly<AccessTokenClaims>
}

const NO_STRINGS: readonly string[] = Object.freeze([])

function isStringArray(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false
  for (const v of value) if (typeof v !== 'string') return false
  return true
}

/**
 * Builds the request's auth context from claims whose signature, `iss`,
 * `aud`, `exp`, `nbf` and presence checks already passed; checks the types
 * of the claims the rest of the code relies on.
 */
export function toAuthContext(payload: JWTPayload): AuthContext {
  const { sub, client_id: clientId, scope, roles, sid, auth_time: authTime, exp } = payload as Record<string, unknown>
  if (typeof sub !== 'string' || sub.length === 0) throw invalidToken('invalid_claim')
  if (typeof clientId !== 'string' || clientId.length === 0) throw invalidToken('invalid_claim')
  if (typeof exp !== 'number') throw invalidToken('invalid_claim')
  if (scope !== undefined && typeof scope !== 'string') throw invalidToken('invalid_claim')
  if (roles !== undefined && !isStringArray(roles)) throw invalidToken('invalid_claim')
  if (sid !== undefined && (typeof sid !== 'string' || sid.length === 0)) throw invalidToken('invalid_claim')
  if (authTime !== undefined && typeof authTime !== 'number') throw invalidToken('invalid_claim')

  const scopes = scope === undefined || scope === '' ? NO_STRINGS : Object.freeze(scope.split(' ').filter((s) => s.length > 0))
  const kind: PrincipalKind =
    sub === clientId && roles === undefined && sid === undefined && authTime === undefined ? 'service' : 'user'
  if (Array.isArray(roles)) Object.freeze(roles)
  if (Array.isArray(payload.aud)) Object.freeze(payload.aud)
  return Object.freeze({
    subject: sub,
    clientId,
    scopes,
    roles: roles === undefined ? NO_STRINGS : roles,
    sid,
    kind,
    expiresAt: exp,
    claims: Object.freeze(payload as AccessTokenClaims),
  })
}
