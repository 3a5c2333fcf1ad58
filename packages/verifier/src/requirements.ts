import { AccessDenied, InsufficientScope, InsufficientUserAuthentication, type OAuthError } from '@gatehouse/service-kit'
import type { AuthContext, PrincipalKind } from './auth-context.js'
import { DpopRequired } from './errors.js'

/** What a route demands of a verified token. Every listed scope and every listed role is required. */
export interface AuthRequirement {
  scopes?: readonly string[]
  roles?: readonly string[]
  /** `service`: a client_credentials token (no user); `user`: a token issued for a user. */
  kind?: PrincipalKind
  /** `required`: only a DPoP-bound token presented with its proof (RFC 9449); a bearer token is 401 with a DPoP challenge. */
  dpop?: 'required'
  /**
   * RFC 8693 delegation: `required` admits only an exchanged token (one with an `act` claim, a
   * service acting for the subject); `forbidden` refuses one (the subject's own client must call).
   */
  delegation?: Delegation
  /**
   * RFC 9470: the token's `acr` must be this value, or one of these (list every value that is good
   * enough: the verifier knows no order among them). Otherwise 401 `insufficient_user_authentication`
   * whose challenge names them as `acr_values`, in the order given, for the client to ask for at
   * the authorization server (RFC 9470 §3, §4).
   */
  acr?: string | readonly string[]
}

export type Delegation = 'required' | 'forbidden'

/** 403 `insufficient_scope`, carrying the scope the challenge must name (RFC 6750 §3). */
export class ScopeRequired extends InsufficientScope {
  readonly scope: string
  constructor(scope: string) {
    super('the access token lacks the required scope', { detail: `missing scope: ${scope}` })
    this.name = 'ScopeRequired'
    this.scope = scope
  }
}

/** 401 `insufficient_user_authentication`, carrying the acr values the challenge must name (RFC 9470 §3). */
export class AcrRequired extends InsufficientUserAuthentication {
  readonly acrValues: string
  constructor(acrValues: string, found: unknown) {
    super('a stronger authentication of the user is required', { detail: `acr ${typeof found === 'string' ? found.slice(0, 128) : 'absent'}, required one of: ${acrValues}` })
    this.name = 'AcrRequired'
    this.acrValues = acrValues
  }
}

export type RequirementCheck = (auth: AuthContext) => OAuthError | undefined

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/** Compiles a requirement once, at route registration, into a check that allocates nothing when it passes. */
export function compileRequirement(requirement: AuthRequirement): RequirementCheck {
  const scopes = [...(requirement.scopes ?? [])]
  const roles = [...(requirement.roles ?? [])]
  const kind = requirement.kind
  if (requirement.dpop !== undefined && requirement.dpop !== 'required') throw new TypeError(`auth requirement: dpop must be "required"`)
  const dpopRequired = requirement.dpop === 'required'
  const delegation = requirement.delegation
  for (const s of scopes) {
    // RFC 6749 §3.3 scope-token syntax, so it can be quoted in the challenge.
    if (typeof s !== 'string' || !SCOPE_TOKEN.test(s)) throw new TypeError(`auth requirement: invalid scope ${JSON.stringify(s)}`)
  }
  for (const r of roles) if (typeof r !== 'string' || r.length === 0) throw new TypeError(`auth requirement: invalid role ${JSON.stringify(r)}`)
  if (kind !== undefined && kind !== 'user' && kind !== 'service') throw new TypeError(`auth requirement: kind must be "user" or "service"`)
  if (delegation !== undefined && delegation !== 'required' && delegation !== 'forbidden') throw new TypeError('auth requirement: delegation must be "required" or "forbidden"')
  const scopeString = scopes.join(' ')
  const acrs = requirement.acr === undefined ? [] : typeof requirement.acr === 'string' ? [requirement.acr] : [...requirement.acr]
  if (requirement.acr !== undefined && acrs.length === 0) throw new TypeError('auth requirement: acr names no value')
  // An acr value is a string without spaces (acr_values is space-separated), quotable in the challenge.
  for (const a of acrs) if (typeof a !== 'string' || !SCOPE_TOKEN.test(a)) throw new TypeError(`auth requirement: invalid acr ${JSON.stringify(a)}`)
  const acrString = acrs.join(' ')

  return (auth) => {
    if (dpopRequired && auth.tokenType !== 'DPoP') return new DpopRequired()
    if (kind !== undefined && auth.kind !== kind) {
      return new AccessDenied(kind === 'service' ? 'this resource requires a service token' : 'this resource requires a user token', {
        detail: `wrong principal kind: ${auth.kind}`,
      })
    }
    if (delegation !== undefined && (auth.actors.length > 0) !== (delegation === 'required')) {
      return new AccessDenied(delegation === 'required' ? 'this resource requires a delegated token' : 'this resource does not accept a delegated token', {
        detail: `delegation ${delegation}, actors: ${auth.actors.length}`,
      })
    }
    for (let i = 0; i < scopes.length; i++) if (!auth.scopes.includes(scopes[i]!)) return new ScopeRequired(scopeString)
    if (acrs.length > 0) {
      const acr = auth.claims.acr
      if (typeof acr !== 'string' || !acrs.includes(acr)) return new AcrRequired(acrString, acr)
    }
    for (let i = 0; i < roles.length; i++) {
      if (!auth.roles.includes(roles[i]!)) return new AccessDenied('the access token lacks a required role', { detail: `missing role: ${roles[i]}` })
    }
    return undefined
  }
}
