import { InvalidTarget } from '@gatehouse/service-kit'
import { splitScope } from './scope.js'

/**
 * Resource indicators (RFC 8707; DESIGN §10.3), the one place of their rules: which resources a
 * client may be given, which one a token is for, and which scopes go with it.
 *
 * A client's allowed set is its default `audience` and its `resources` metadata. `/authorize`
 * grants some of them (the requested ones, or the default); the code and the refresh family
 * carry that granted set; each token request picks ONE of it for the access token's `aud`
 * (§2.2: a code exchange or a refresh may narrow). Scopes are per resource (DESIGN §3
 * `resources[].scopes`): a token for audience A carries the granted scopes that are A's own or
 * that no configured resource owns (openid, profile, email); another resource's scopes are left
 * out. A client without `resources` keeps today's tokens: its whole granted scope, for its
 * audience.
 */

/** What the rules read of a client (directory/clients.ts `Client`). */
export interface ResourceHolder {
  audience: string
  /** The `resources` metadata: further audiences the client may ask for; empty when none. */
  resources: readonly string[]
}

/** What the rules read of a configured resource (directory/resources.ts `ResourceCatalog`). */
export interface ScopedResource {
  audience: string
  scopes: readonly string[]
}

const MAX_RESOURCE = 2048
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/

/**
 * Why `uri` cannot be a resource indicator, or null. RFC 8707 §2: an absolute URI (RFC 3986
 * §4.3) that MUST NOT include a fragment. Visible ASCII only: no spaces or controls, which URL
 * parsing would otherwise trim or escape into another string than the one compared.
 */
export function resourceUriProblem(uri: string): string | null {
  if (uri.length > MAX_RESOURCE) return `is longer than ${MAX_RESOURCE} characters`
  if (!/^[\x21-\x7e]+$/.test(uri) || !SCHEME.test(uri)) return 'is not an absolute URI'
  try {
    new URL(uri)
  } catch {
    return 'is not an absolute URI'
  }
  if (uri.includes('#')) return 'must not have a fragment (RFC 8707 §2)'
  return null
}

/** The resources a client may be given: its default audience first, then its `resources`. */
export function allowedResources(client: ResourceHolder): string[] {
  return [...new Set([client.audience, ...client.resources])]
}

function checkAllowed(resource: string, client: ResourceHolder): void {
  const problem = resourceUriProblem(resource)
  if (problem !== null) throw new InvalidTarget(`the resource ${problem}`)
  if (!allowedResources(client).includes(resource)) throw new InvalidTarget('the resource is not allowed for this client')
}

/**
 * The resources an authorization request grants (RFC 8707 §2, `resource` may repeat): every one
 * requested, each allowed to the client, else invalid_target; none requested: the default.
 */
export function authorizedResources(requested: readonly string[], client: ResourceHolder): string[] {
  if (requested.length === 0) return [client.audience]
  for (const r of requested) checkAllowed(r, client)
  return [...new Set(requested)]
}

/**
 * The one `resource` of a token request, or undefined when absent. Several distinct values are
 * refused: one access token has one audience here (docs/design.md). Checked against the client
 * before anything is spent; whether the grant covers it is `tokenAudience`'s question.
 */
export function requestedResource(values: readonly string[], client: ResourceHolder): string | undefined {
  const distinct = [...new Set(values)]
  if (distinct.length > 1) throw new InvalidTarget('one resource per access token')
  const resource = distinct[0]
  if (resource !== undefined) checkAllowed(resource, client)
  return resource
}

/**
 * What a grant still covers: its granted set (a code's, a family's; absent for those made before
 * resource indicators: the client's audience now) less what the client is no longer allowed. A
 * client without `resources` has one audience, and its grants follow it as they always did.
 */
export function grantedResources(granted: readonly string[] | undefined, client: ResourceHolder): string[] {
  if (client.resources.length === 0) return [client.audience]
  const allowed = allowedResources(client)
  return (granted ?? [client.audience]).filter((r) => allowed.includes(r))
}

/**
 * The audience of the access token: the requested resource if the grant covers it (else
 * invalid_target, RFC 8707 §2.2); when none was asked for, the client's default audience if
 * covered, else the first covered. Undefined when the grant covers nothing any more.
 */
export function tokenAudience(requested: string | undefined, covered: readonly string[], client: ResourceHolder): string | undefined {
  if (requested !== undefined) {
    if (!covered.includes(requested)) throw new InvalidTarget('the resource was not granted')
    return requested
  }
  return covered.includes(client.audience) ? client.audience : covered[0]
}

/**
 * The scope of an access token for `audience` (space-separated): the granted scopes that are the
 * audience's own or that no configured resource owns. A client without `resources` metadata
 * gets its whole granted scope, as before resource indicators.
 */
export function scopeForAudience(granted: string, audience: string, client: ResourceHolder, catalog: readonly ScopedResource[]): string {
  if (client.resources.length === 0) return granted
  const owned = new Set<string>()
  const own = new Set<string>()
  for (const r of catalog) {
    for (const s of r.scopes) {
      owned.add(s)
      if (r.audience === audience) own.add(s)
    }
  }
  return splitScope(granted).filter((s) => own.has(s) || !owned.has(s)).join(' ')
}
