import { createHash } from 'node:crypto'
import { TokenClientError } from './errors.js'
import type { AccessToken, Clock } from './token-client.js'

/** RFC 8693 §2.1: the grant, and the one token type exchanged and asked for. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** What `exchange()` asks for (RFC 8693 §2.1). */
export interface ExchangeRequest {
  /** The access token this service was called with: the user it acts for. */
  subjectToken: string
  /** The downstream service as a name (RFC 8693 `audience`) ... */
  audience?: string
  /** ... or as a URI (RFC 8707 `resource`); one of the two is required, both must agree. */
  resource?: string
  /** Narrower than the subject token's scope (default: what the server allows). */
  scope?: string | readonly string[]
  /** This service's own token (e.g. its client_credentials token), when the server asks for one. */
  actorToken?: string
}

interface Settings {
  clock: Clock
  /** `exp` of a JWT, read without verifying (the subject token's, to end the entry with it). */
  jwtExp: (token: string) => number | undefined
  skewMs: number
  exchangeCacheSize: number
}

interface Entry {
  token: AccessToken
  renewAt: number
}

function requestError(requirement: string): TypeError {
  return new TypeError(`exchange(): ${requirement}`)
}

/**
 * Exchanged tokens, cached by what was asked (the subject token, the target, the scope, the actor
 * token; held as a SHA-256 digest, so the map keeps no token as a key), with the client's own
 * rules: fetched once however many callers ask at the same moment, renewed ahead of expiry, and
 * the cached token served while a renewal fails for a reason that may pass (network, 5xx, 429).
 * A final refusal (the subject was revoked, the target is not allowed: `invalid_request`,
 * `invalid_target`...) drops the entry: the token would not be issued again, so it is not served.
 * An entry ends with the issued token or the subject token, whichever expires first. The map is
 * bounded (`exchangeCacheSize`): expired entries go first, then the least recently fetched.
 */
export class ExchangeCache {
  readonly #entries = new Map<string, Entry>()
  readonly #inflight = new Map<string, Promise<AccessToken>>()
  readonly #request: (grant: URLSearchParams) => Promise<AccessToken>
  readonly #o: Settings

  constructor(request: (grant: URLSearchParams) => Promise<AccessToken>, settings: Settings) {
    this.#request = request
    this.#o = settings
  }

  /** Rejects with a TypeError for a malformed request, a TokenClientError for the server's refusal. */
  async get(request: ExchangeRequest): Promise<AccessToken> {
    const grant = exchangeGrant(request)
    const key = createHash('sha256').update(grant.toString()).digest('base64url')
    const entry = this.#entries.get(key)
    if (entry !== undefined && this.#o.clock() < entry.renewAt) return entry.token
    let flight = this.#inflight.get(key)
    if (flight === undefined) {
      flight = this.#obtain(key, grant, request.subjectToken).finally(() => this.#inflight.delete(key))
      this.#inflight.set(key, flight)
    }
    return await flight
  }

  clear(): void {
    this.#entries.clear()
  }

  get size(): number {
    return this.#entries.size
  }

  async #obtain(key: string, grant: URLSearchParams, subjectToken: string): Promise<AccessToken> {
    let issued: AccessToken
    try {
      issued = await this.#request(grant)
    } catch (err) {
      const entry = this.#entries.get(key)
      const passing = err instanceof TokenClientError && err.retryable
      if (entry !== undefined && passing && this.#o.clock() < entry.token.expiresAt - 1000) return entry.token
      this.#entries.delete(key)
      throw err
    }
    const subjectExp = this.#o.jwtExp(subjectToken)
    const token = subjectExp !== undefined && subjectExp * 1000 < issued.expiresAt ? { ...issued, expiresAt: subjectExp * 1000 } : issued
    const now = this.#o.clock()
    const lifetime = token.expiresAt - now
    this.#entries.delete(key)
    if (lifetime > 0) {
      this.#makeRoom(now)
      this.#entries.set(key, { token, renewAt: now + Math.max(lifetime - this.#o.skewMs, lifetime / 2) })
    }
    return token
  }

  #makeRoom(now: number): void {
    if (this.#entries.size < this.#o.exchangeCacheSize) return
    for (const [k, e] of this.#entries) if (e.token.expiresAt <= now) this.#entries.delete(k)
    // Oldest first: a Map iterates in insertion order, and a renewed entry is inserted again.
    for (const k of this.#entries.keys()) {
      if (this.#entries.size < this.#o.exchangeCacheSize) break
      this.#entries.delete(k)
    }
  }
}

/** The grant's parameters (RFC 8693 §2.1), the request checked first (a TypeError names what is wrong). */
function exchangeGrant(r: ExchangeRequest): URLSearchParams {
  if (typeof r !== 'object' || r === null) throw requestError('the request must be an object')
  if (typeof r.subjectToken !== 'string' || r.subjectToken.length === 0) throw requestError('subjectToken must be a non-empty string')
  if (r.audience === undefined && r.resource === undefined) throw requestError('audience or resource is required')
  for (const [name, v] of [['audience', r.audience], ['resource', r.resource], ['actorToken', r.actorToken]] as const) {
    if (v !== undefined && (typeof v !== 'string' || v.length === 0)) throw requestError(`${name} must be a non-empty string`)
  }
  const grant = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: r.subjectToken, subject_token_type: ACCESS_TOKEN_TYPE })
  if (r.audience !== undefined) grant.set('audience', r.audience)
  if (r.resource !== undefined) grant.set('resource', r.resource)
  const scope = r.scope === undefined ? undefined : typeof r.scope === 'string' ? r.scope : r.scope.join(' ')
  if (scope !== undefined && scope !== '') grant.set('scope', scope)
  if (r.actorToken !== undefined) {
    grant.set('actor_token', r.actorToken)
    grant.set('actor_token_type', ACCESS_TOKEN_TYPE)
  }
  return grant
}
