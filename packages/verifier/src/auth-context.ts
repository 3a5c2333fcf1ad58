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
  /** RFC 9068 §2.2.1: how the user authenticated, when the authorization asked for it. */
  acr?: string
  /** RFC 9449 §6.1: the DPoP key the token is bound to (RFC 7638 SHA-256 thumbprint). */
  cnf?: { jkt?: string }
  /** RFC 8693 §4.1: the party acting for `sub` (an exchanged token), nested for a chain. */
  act?: ActorClaim
}

/** RFC 8693 §4.1 `act`: the current actor, and in its own `act` the one before it. */
export interface ActorClaim {
  sub: string
  act?: ActorClaim
}

/** Longest delegation chain accepted; a deeper `act` nesting is a malformed token. */
export const MAX_ACTOR_CHAIN = 16

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
  /**
   * The delegation chain of an exchanged token (RFC 8693 §4.1 `act`), flattened: the current actor
   * (the outermost `act.sub`, the client that exchanged the token last) first, the earliest last.
   * Empty when the token is not delegated.
   */
  readonly actors: readonly string[]
  /** `exp`, seconds since the epoch. */
  readonly expiresAt: number
  /**
   * `cnf.jkt`: the thumbprint of the DPoP key the token is bound to (RFC 9449 §6.1), checked
   * against the request's proof. Undefined for a bearer token.
   */
  readonly jkt: string | undefined
  /**
   * How the token was presented: `DPoP` for a key-bound token (it is only ever accepted with a
   * proof of its key), `Bearer` otherwise. A property of the token, so it can be cached with it.
   */
  readonly tokenType: 'Bearer' | 'DPoP'
  readonly claims: Readonly<AccessTokenClaims>
}

const NO_STRINGS: readonly string[] = Object.freeze([])

function isStringArray(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false
  for (const v of value) if (typeof v !== 'string') return false
  return true
}

const JKT = /^[A-Za-z0-9_-]{43}$/

/**
 * RFC 9449 §6.1 / RFC 7800: `cnf.jkt`, a base64url SHA-256 thumbprint. A `cnf` this verifier
 * cannot honour (another confirmation method, a malformed `jkt`) makes the token invalid rather
 * than a bearer token: ignoring a confirmation would drop the constraint it states.
 */
function confirmationJkt(cnf: unknown): string | undefined {
  if (cnf === undefined) return undefined
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) throw invalidToken('invalid_claim')
  const jkt = (cnf as Record<string, unknown>).jkt
  if (typeof jkt !== 'string' || !JKT.test(jkt)) throw invalidToken('invalid_claim')
  return jkt
}

/** The `act` chain's subjects, outermost first; throws invalid_token for a malformed or too deep chain. */
function actorChain(act: unknown): readonly string[] {
  if (act === undefined) return NO_STRINGS
  const chain: string[] = []
  let node: unknown = act
  while (node !== undefined) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) throw invalidToken('invalid_claim')
    const { sub, act: inner } = node as Record<string, unknown>
    if (typeof sub !== 'string' || sub.length === 0 || chain.length >= MAX_ACTOR_CHAIN) throw invalidToken('invalid_claim')
    chain.push(sub)
    node = inner
  }
  return Object.freeze(chain)
}

/**
 * Builds the request's auth context from claims whose signature, `iss`,
 * `aud`, `exp`, `nbf` and presence checks already passed; checks the types
 * of the claims the rest of the code relies on.
 */
export function toAuthContext(payload: JWTPayload): AuthContext {
  const { sub, client_id: clientId, scope, roles, sid, auth_time: authTime, exp, cnf, act } = payload as Record<string, unknown>
  if (typeof sub !== 'string' || sub.length === 0) throw invalidToken('invalid_claim')
  if (typeof clientId !== 'string' || clientId.length === 0) throw invalidToken('invalid_claim')
  if (typeof exp !== 'number') throw invalidToken('invalid_claim')
  if (scope !== undefined && typeof scope !== 'string') throw invalidToken('invalid_claim')
  if (roles !== undefined && !isStringArray(roles)) throw invalidToken('invalid_claim')
  if (sid !== undefined && (typeof sid !== 'string' || sid.length === 0)) throw invalidToken('invalid_claim')
  if (authTime !== undefined && typeof authTime !== 'number') throw invalidToken('invalid_claim')
  const jkt = confirmationJkt(cnf)
  const actors = actorChain(act)

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
    actors,
    expiresAt: exp,
    jkt,
    tokenType: jkt === undefined ? 'Bearer' : 'DPoP',
    claims: Object.freeze(payload as AccessTokenClaims),
  })
}
