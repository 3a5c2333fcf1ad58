import { InvalidRequest, OAuthError } from '@gatehouse/service-kit'
import { parseAuthorizationRequest, type ParsedAuthorization } from '../authorize/authorization-request.js'
import type { Client } from '../directory/clients.js'
import type { AuthDeps } from '../runtime/deps.js'
import { referenceOf, requestUriOf, type PushedParams, type TakeOutcome } from './request-store.js'

/**
 * Pushed authorization requests (RFC 9126): validating and keeping what a client pushes to /par,
 * and turning a `request_uri` at /authorize back into that request.
 */

/** Parameters that only authenticate the client at /par: "not germane to the authorization request itself" (RFC 9126 §2.1). */
const CLIENT_AUTH_ONLY = new Set(['client_secret', 'client_assertion', 'client_assertion_type'])

export type PushDeps = Pick<AuthDeps, 'clients' | 'pushedRequests' | 'config' | 'metrics'>

/**
 * RFC 9126 §2.1, for a client already authenticated as at /token: refuse `request_uri` (and
 * request objects, not supported), check that `client_id` names the authenticated client, validate
 * the request exactly as /authorize would (any error thrown, for the JSON of RFC 6749 §5.2), then
 * keep it. Returns the request_uri and its lifetime (§2.2).
 */
export async function pushAuthorizationRequest(body: Readonly<Record<string, unknown>>, client: Client, deps: PushDeps): Promise<{ requestUri: string; expiresIn: number }> {
  let params: PushedParams
  try {
    params = await validatePushed(body, client, deps)
  } catch (err) {
    if (err instanceof OAuthError && err.statusCode < 500) deps.metrics.pushedRequests.inc({ outcome: 'refused' })
    throw err
  }
  const reference = await deps.pushedRequests.push({ clientId: client.id, params })
  deps.metrics.pushedRequests.inc({ outcome: 'pushed' })
  return { requestUri: requestUriOf(reference), expiresIn: deps.config.parTtl }
}

/** The parameters to keep, or the error to answer. */
async function validatePushed(body: Readonly<Record<string, unknown>>, client: Client, deps: PushDeps): Promise<PushedParams> {
  if (body.request_uri !== undefined) throw new InvalidRequest('request_uri must not be pushed (RFC 9126 §2.1)')
  if (body.request !== undefined) throw new InvalidRequest('request objects are not supported')
  // §2.1: client_id is required here as at /authorize (the validation below says so when it is
  // missing); client authentication already refused one naming another client.
  if (body.client_id !== undefined && body.client_id !== client.id) throw new InvalidRequest('client_id does not match the authenticated client')
  const entries: [string, string | string[]][] = []
  for (const [k, v] of Object.entries(body)) {
    if (CLIENT_AUTH_ONLY.has(k)) continue
    if (typeof v === 'string') entries.push([k, v])
    else if (Array.isArray(v) && v.every((x): x is string => typeof x === 'string')) entries.push([k, [...v]])
    else throw new InvalidRequest(`parameter ${k.slice(0, 64)} is malformed`)
  }
  // fromEntries: every name stays an own property, `__proto__` included.
  const params: PushedParams = Object.fromEntries(entries)
  const parsed = await parseAuthorizationRequest(params, deps.clients)
  if (parsed.kind !== 'ok') throw parsed.error
  if (parsed.client.id !== client.id) throw new InvalidRequest('client_id does not match the authenticated client')
  return params
}

/** Whether /authorize was given a request_uri (empty counts as absent, RFC 6749 §3.1). */
export function hasRequestUri(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false
  const v = (raw as Record<string, unknown>).request_uri
  return v !== undefined && v !== ''
}

const TAKE_REFUSALS: Record<Exclude<TakeOutcome['status'], 'ok'>, string> = {
  not_found: 'the request_uri is unknown or was already used',
  expired: 'the request_uri has expired',
  other_client: 'the request_uri was not issued to this client',
}

/**
 * /authorize with a request_uri (RFC 9126 §4): the pushed request, taken once, by the client that
 * pushed it, then validated again like any authorization request. Only the pushed parameters count;
 * whatever else the URL carries is ignored (RFC 9101 §6.3), but its client_id must name the pusher.
 * A request_uri that cannot be used is shown to the user, never redirected: until the pushed
 * request is read, no redirect URI is known. The log says `invalid_request_uri` (RFC 9101 §5.2).
 */
export async function parsePushedAuthorization(raw: unknown, deps: Pick<AuthDeps, 'clients' | 'pushedRequests' | 'metrics'>): Promise<ParsedAuthorization> {
  const r = raw as Record<string, unknown>
  const page = (description: string, reason: string): ParsedAuthorization => ({
    kind: 'page',
    error: new InvalidRequest(description, { detail: `invalid_request_uri: ${reason}` }),
  })
  if (typeof r.request_uri !== 'string') return page('request_uri is repeated or malformed', 'malformed')
  // RFC 9101 §5: client_id is required beside request_uri, and must be the pusher's.
  if (typeof r.client_id !== 'string' || r.client_id === '') return page('client_id is missing, repeated or malformed', 'no client_id')
  const reference = referenceOf(r.request_uri)
  const outcome: TakeOutcome = reference === null ? { status: 'not_found' } : await deps.pushedRequests.take(reference, r.client_id)
  if (outcome.status !== 'ok') {
    deps.metrics.pushedRequests.inc({ outcome: outcome.status })
    return page(TAKE_REFUSALS[outcome.status], outcome.status)
  }
  deps.metrics.pushedRequests.inc({ outcome: 'used' })
  return await parseAuthorizationRequest(outcome.request.params, deps.clients)
}

/**
 * RFC 9126 §4: under REQUIRE_PAR, or for a client registered with
 * `require_pushed_authorization_requests`, an authorization request without a request_uri is
 * refused with `invalid_request`, redirected once the client and its redirect URI are known.
 */
export function requirePushed(parsed: ParsedAuthorization, requireAll: boolean): ParsedAuthorization {
  if (parsed.kind === 'page') return parsed
  if (!requireAll && !parsed.client.requirePushedAuthorizationRequests) return parsed
  const error = new InvalidRequest('this client must use pushed authorization requests (RFC 9126): push the request to the pushed_authorization_request_endpoint and send its request_uri')
  if (parsed.kind === 'redirect') return { ...parsed, error }
  const { state } = parsed.request
  return { kind: 'redirect', client: parsed.client, redirectUri: parsed.request.redirectUri, ...(state === undefined ? {} : { state }), error }
}
