import { InvalidRequest, InvalidScope, InvalidTarget } from '@gatehouse/service-kit'
import { MAX_ACTOR_CHAIN, type ActorClaim } from '@gatehouse/verifier'
import { releasedRoles, type Client } from '../directory/clients.js'
import type { ResourceConfig } from '../directory/config-file.js'
import type { Params } from '../http/form.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { Actor, IssuedAccessToken } from '../tokens/access-tokens.js'
import { accessTokenChecker, type LiveAccessToken } from '../tokens/live-access-token.js'
import { resolveScope, splitScope } from '../tokens/scope.js'
import { allowedResources, resourceUriProblem } from '../tokens/resource-indicators.js'
import { AMR_PASSWORD, acrOf, mandatoryAcr, signInMeets } from '../mfa/assurance.js'

/** RFC 8693 §3: the one token type this server accepts and issues. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** What an exchange asks for, its parameters checked (RFC 8693 §2.1). */
export interface ExchangeRequest {
  subjectToken: string
  actorToken: string | undefined
  /** The downstream service: `audience`, or `resource` (they must agree when both are sent). */
  target: string
  scope: string | undefined
}

/** What was issued, for the grant's response and its log line. */
export interface Exchanged {
  token: IssuedAccessToken
  scope: string
  subject: LiveAccessToken
  audience: string
}

/**
 * RFC 8693 §2.1 parameters. Every refusal is `invalid_request` (§2.2.2) except a target's,
 * `invalid_target`. Only access tokens are exchanged and issued (DESIGN §10.4): a refresh token or an
 * ID token cannot pass as a subject whatever type it claims, because the subject is then checked
 * as an access token (`typ` at+jwt, our key, our issuer).
 */
export function parseExchangeRequest(params: Params, resources: readonly string[] = []): ExchangeRequest {
  const subjectToken = params.subject_token
  if (subjectToken === undefined) throw new InvalidRequest('missing parameter subject_token')
  const subjectType = params.subject_token_type
  if (subjectType === undefined) throw new InvalidRequest('missing parameter subject_token_type')
  if (subjectType !== ACCESS_TOKEN_TYPE) throw new InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`)
  const actorToken = params.actor_token
  const actorType = params.actor_token_type
  // §2.1: actor_token_type "is REQUIRED when the actor_token parameter is present ... MUST NOT be included otherwise".
  if ((actorToken === undefined) !== (actorType === undefined)) throw new InvalidRequest('actor_token and actor_token_type go together')
  if (actorType !== undefined && actorType !== ACCESS_TOKEN_TYPE) throw new InvalidRequest(`actor_token_type must be ${ACCESS_TOKEN_TYPE}`)
  const requested = params.requested_token_type
  if (requested !== undefined && requested !== ACCESS_TOKEN_TYPE) throw new InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`)
  // `resource` may repeat in a form (RFC 8707 §2; http/caller.ts reads it apart): one target here.
  const distinct = [...new Set(resources)]
  if (distinct.length > 1) throw new InvalidTarget('one resource per access token')
  return { subjectToken, actorToken, target: exchangeTarget(distinct[0], params.audience), scope: params.scope }
}

/**
 * The downstream service named by `resource` (an absolute URI without a fragment, RFC 8707 §2)
 * and/or `audience` (a name, RFC 8693 §2.1). A Gatehouse resource is known by its audience, which
 * may be a URI (`api://reports`): both parameters name the same thing, so both must say the same
 * when both are sent. Missing or malformed is `invalid_target` (RFC 8707 §2: "invalid, missing,
 * unknown, or malformed").
 */
export function exchangeTarget(resource: string | undefined, audience: string | undefined): string {
  if (resource === undefined && audience === undefined) throw new InvalidTarget('resource or audience is required')
  if (resource !== undefined) {
    const problem = resourceUriProblem(resource)
    if (problem !== null) throw new InvalidTarget(`the resource ${problem}`)
    if (audience !== undefined && audience !== resource) throw new InvalidTarget('resource and audience name different targets')
  }
  const target = audience ?? resource!
  if (/\s/.test(target)) throw new InvalidTarget('the target is malformed')
  return target
}

/** The target's resource, when the client may exchange for it (metadata `token_exchange.audiences`) and it is known. */
export function allowedTarget(client: Client, resources: readonly ResourceConfig[], target: string): ResourceConfig {
  const resource = resources.find((r) => r.audience === target)
  if (!client.tokenExchange.audiences.includes(target) || resource === undefined) {
    throw new InvalidTarget('the client may not exchange tokens for this target')
  }
  return resource
}

/**
 * DESIGN §10.4: the exchanged token's scope is within the subject token's AND the target's
 * (`resources[].scopes`). Scopes of no resource (`openid`, `profile`) are the client's business with
 * the user, not the downstream service's, so they are not carried. Nothing asked: all of that
 * intersection; an empty one is `invalid_scope` (a token that allows nothing is no use).
 */
export function exchangeScope(requested: string | undefined, subjectScope: string, resourceScopes: readonly string[]): string {
  const allowed = splitScope(subjectScope).filter((s) => resourceScopes.includes(s))
  if (requested === undefined) {
    if (allowed.length === 0) throw new InvalidScope('the subject token has no scope of the target')
    return allowed.join(' ')
  }
  // resolveScope against the request itself checks only the RFC 6749 §3.3 syntax (and drops repeats).
  const asked = splitScope(resolveScope(requested, splitScope(requested)))
  const beyond = asked.filter((s) => !allowed.includes(s))
  if (beyond.length > 0) throw new InvalidScope(`scope beyond the subject token's and the target's: ${beyond.join(' ')}`)
  return asked.join(' ')
}

/** RFC 8693 §4.1: the caller is the current actor; a subject that was itself delegated keeps its chain inside. */
export function actClaim(caller: string, prior: ActorClaim | undefined): Actor {
  return prior === undefined ? { sub: caller } : { sub: caller, act: prior }
}

function chainLength(act: ActorClaim | undefined): number {
  let n = 0
  for (let a = act; a !== undefined; a = a.act) n++
  return n
}

/** The auth service's own check of a live access token (tokens/live-access-token.ts), one per deps. */
const checkers = new WeakMap<AuthDeps, (token: string) => Promise<LiveAccessToken | null>>()
function checker(deps: AuthDeps): (token: string) => Promise<LiveAccessToken | null> {
  let check = checkers.get(deps)
  if (check === undefined) {
    check = accessTokenChecker(deps)
    checkers.set(deps, check)
  }
  return check
}

/**
 * Token exchange (RFC 8693) for `client`, which authenticated (not a public client: the grant
 * checks). Checks in order, each before anything is issued: the parameters, the target, the
 * subject token (live: signed by us, unexpired, its family not revoked, DESIGN §6), the actor
 * token (live, and issued to the caller itself: a token of another client proves nothing about
 * who calls), the scope. The new token keeps the user (`sub`, `sid`, `auth_time`), is for the
 * target, names the caller as `client_id` and as the current actor, and ends no later than the
 * subject token. Roles pass only when the caller may receive roles (DESIGN §10.1) and the subject
 * carried them.
 */
export async function exchangeToken(deps: AuthDeps, client: Client, params: Params, resources: readonly string[], jkt?: string): Promise<Exchanged> {
  const req = parseExchangeRequest(params, resources)
  const resource = allowedTarget(client, deps.resources.list(), req.target)
  const check = checker(deps)
  const subject = await check(req.subjectToken)
  if (subject === null) throw new InvalidRequest('the subject_token is invalid, expired or revoked')
  // Only a user's token is exchanged on the user's behalf (DESIGN §10.4); a service token has no
  // revocable family (`sid`) that could end the exchanged one.
  if (subject.sid === undefined) throw new InvalidRequest('the subject_token does not stand for a user')
  // Only the service a token was issued for may exchange it (RFC 8693 §2.2.2, "unacceptable based
  // on policy"): its `aud` names one of the caller's own resources, as for /introspect. Another
  // client that got hold of the token, or of a DPoP-bound one without its key, cannot turn it
  // into a token of its own.
  const own = allowedResources(client)
  const aud = Array.isArray(subject.aud) ? subject.aud : [subject.aud]
  if (!aud.some((a) => typeof a === 'string' && own.includes(a))) throw new InvalidRequest('the subject_token was not issued for this client\'s audience')
  const prior = subject.act
  if (chainLength(prior) >= MAX_ACTOR_CHAIN) throw new InvalidRequest('the subject_token has too long a delegation chain')
  if (req.actorToken !== undefined) {
    const actor = await check(req.actorToken)
    if (actor === null) throw new InvalidRequest('the actor_token is invalid, expired or revoked')
    if (actor.client_id !== client.id) throw new InvalidRequest('the actor_token was not issued to this client')
  }
  // How the user signed in (the subject's family, DESIGN §10.5): a client that requires a second
  // factor exchanges only tokens of a sign-in with one, and the exchanged token keeps its acr.
  const family = await deps.families.get(subject.sid)
  const amr = family?.amr ?? AMR_PASSWORD
  if (!signInMeets(amr, mandatoryAcr(client))) throw new InvalidRequest('the subject_token comes from a sign-in without the second factor this client requires')
  const acr = typeof subject.acr === 'string' ? subject.acr : client.requireMfa ? acrOf(amr) : undefined
  const scope = exchangeScope(req.scope, subject.scope, resource.scopes)
  const token = await deps.tokens.issue({
    sub: subject.sub,
    clientId: client.id,
    audience: resource.audience,
    scope,
    roles: subject.roles === undefined ? undefined : releasedRoles(client, subject.roles),
    sid: subject.sid,
    authTime: subject.auth_time,
    act: actClaim(client.id, prior),
    notAfter: subject.exp,
    // RFC 9449 §5: a proof at /token binds the exchanged token to the caller's key.
    jkt,
    ...(acr === undefined ? {} : { acr }),
  })
  return { token, scope, subject, audience: resource.audience }
}
