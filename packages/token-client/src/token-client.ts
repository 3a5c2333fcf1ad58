/**
 * The token client in one module, over 300 lines because its parts share the resolved options and
 * one request path: the options and their checks, the cached single-flight client_credentials
 * token, the one retried token request (three client authentication methods, DPoP proofs and the
 * nonce retry; exchange(), in exchange.ts, goes through it as well), discovery of the token
 * endpoint, and the mapping of error answers. The DPoP key and proofs themselves are in dpop.ts.
 */
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import { CLIENT_ASSERTION_TYPE, ClientAssertionSigner, type PrivateKeyJwtCredentials } from './client-assertion.js'
import { DpopNonceStore, DpopSigner, type DpopOption } from './dpop.js'
import { TokenClientError, isOAuthErrorCode, type TokenClientErrorCode } from './errors.js'
import { ExchangeCache, type ExchangeRequest } from './exchange.js'

/** The token client's tracer (@opentelemetry/api: the no-op one unless the application registered a provider). */
const tracer = trace.getTracer('@gatehouse/token-client')

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>
/** Milliseconds since the epoch. */
export type Clock = () => number

export type ClientCredentials =
  | { type: 'client_secret_basic'; secret: string }
  | { type: 'client_secret_post'; secret: string }
  | PrivateKeyJwtCredentials

export interface RetryOptions {
  /** Attempts in all, the first included (default 4). */
  maxAttempts?: number
  /** Delay before the first retry; doubles each time (default 200 ms). */
  baseDelayMs?: number
  /** Cap of one delay (default 5 s). */
  maxDelayMs?: number
}

export interface TokenClientOptions {
  /** The authorization server; its discovery document names the token endpoint unless `tokenEndpoint` is given. */
  issuer?: string
  tokenEndpoint?: string
  clientId: string
  credentials: ClientCredentials
  /** Scopes to request (space-separated string or a list). */
  scope?: string | readonly string[]
  /** The API the token is for, sent as RFC 8707 `resource` (or `audience`, see `audienceParameter`). */
  audience?: string
  audienceParameter?: 'resource' | 'audience'
  fetch?: FetchLike
  clock?: Clock
  /** A token is renewed this long before it expires, at most half its lifetime (default 30 s). */
  refreshSkewSeconds?: number
  retry?: RetryOptions
  /** Timeout of one HTTP request (default 10 s). */
  timeoutMs?: number
  /** `exp` of private_key_jwt assertions, in seconds from now (default 60). */
  assertionLifetimeSeconds?: number
  /**
   * DPoP (RFC 9449): `true` makes an ES256 key pair for this client; or give your own EC P-256
   * `{ privateKey, publicKey }` (KeyObject or CryptoKey). Token requests then carry a proof, a
   * `use_dpop_nonce` answer is retried once with the server's `DPoP-Nonce`, and
   * `authorizationHeaders()` makes the proof for each resource call.
   */
  dpop?: DpopOption
  /** Injected for tests: how to wait between attempts. */
  sleep?: (ms: number) => Promise<void>
  /** Injected for tests: jitter source in [0, 1). */
  random?: () => number
  /** How many exchanged tokens `exchange()` keeps (default 1000; the least recently fetched go first). */
  exchangeCacheSize?: number
}

export interface AccessToken {
  accessToken: string
  /** `DPoP` when the server bound the token to the client's DPoP key; then every use needs a proof. */
  tokenType: 'Bearer' | 'DPoP'
  /** Milliseconds since the epoch. */
  expiresAt: number
  scope: string | undefined
}

/** Call it for a valid access token: cached, single-flight, retried (see `createTokenClient`). */
export interface TokenClient {
  (): Promise<string>
  /** The token with its metadata. */
  token(): Promise<AccessToken>
  /** Forgets the cached token and every exchanged one (e.g. after a resource answered 401 invalid_token). */
  invalidate(): void
  /**
   * The headers of a resource call to `method url`: `{ authorization: 'Bearer …' }`, or for a
   * DPoP-bound token `{ authorization: 'DPoP …', dpop: '<a fresh proof naming the token>' }`
   * (with the nonce last seen from that origin, if any). One call per request: a proof is single-use.
   */
  authorizationHeaders(method: string, url: string): Promise<AuthorizationHeaders>
  /** Remembers a resource server's `DPoP-Nonce` (RFC 9449 §9) from its response, for the next proofs to its origin. */
  rememberDpopNonce(url: string, response: { headers: Pick<Headers, 'get'> }): void
  /** The DPoP key's thumbprint (`cnf.jkt`), or undefined without DPoP. */
  dpopThumbprint(): Promise<string | undefined>
  /**
   * Token exchange (RFC 8693): a token for `audience` or `resource` that acts for the holder of
   * `subjectToken` (the user's access token this service received). Cached per subject token,
   * target, scope and actor token, with the same rules as the client's own token, and never past
   * the issued token's expiry nor the subject token's.
   */
  exchange(request: ExchangeRequest): Promise<AccessToken>
}

export type AuthorizationHeaders = { authorization: string; dpop?: string }

interface Resolved {
  issuer: string | undefined
  tokenEndpoint: string | undefined
  clientId: string
  credentials: ClientCredentials
  scope: string | undefined
  audience: string | undefined
  audienceParameter: 'resource' | 'audience'
  fetch: FetchLike
  clock: Clock
  skewMs: number
  maxAttempts: number
  baseDelayMs: number
  maxDelayMs: number
  timeoutMs: number
  assertionLifetimeSeconds: number
  dpop: DpopOption | undefined
  sleep: (ms: number) => Promise<void>
  random: () => number
  exchangeCacheSize: number
}

function optionError(option: string, requirement: string): TypeError {
  return new TypeError(`token client option "${option}" ${requirement}`)
}

function httpUrl(option: string, value: unknown): string {
  if (typeof value !== 'string') throw optionError(option, 'must be a URL string')
  try {
    const u = new URL(value)
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error()
  } catch {
    throw optionError(option, `must be an http(s) URL, got ${JSON.stringify(value)}`)
  }
  return value
}

function nonNegative(option: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw optionError(option, `must be a number >= ${min}`)
  return value
}

function resolve(o: TokenClientOptions): Resolved {
  if (typeof o !== 'object' || o === null) throw optionError('options', 'must be an object')
  const issuer = o.issuer === undefined ? undefined : httpUrl('issuer', o.issuer)
  const tokenEndpoint = o.tokenEndpoint === undefined ? undefined : httpUrl('tokenEndpoint', o.tokenEndpoint)
  if (issuer === undefined && tokenEndpoint === undefined) throw optionError('issuer', 'or "tokenEndpoint" is required')
  if (typeof o.clientId !== 'string' || o.clientId.length === 0) throw optionError('clientId', 'must be a non-empty string')
  const c = o.credentials as ClientCredentials | undefined
  if (c === undefined || typeof c !== 'object') throw optionError('credentials', 'is required')
  if (c.type === 'client_secret_basic' || c.type === 'client_secret_post') {
    if (typeof c.secret !== 'string' || c.secret.length === 0) throw optionError('credentials.secret', 'must be a non-empty string')
  } else if (c.type === 'private_key_jwt') {
    if (typeof c.privateKey !== 'object' || c.privateKey === null) throw optionError('credentials.privateKey', 'is required')
    // The assertion's aud is the issuer identifier alone (RFC 7523bis), so it must be known.
    if (issuer === undefined) throw optionError('issuer', 'is required with private_key_jwt (the assertion\'s audience)')
  } else {
    throw optionError('credentials.type', 'must be client_secret_basic, client_secret_post or private_key_jwt')
  }
  const scope = o.scope === undefined ? undefined : typeof o.scope === 'string' ? o.scope : o.scope.join(' ')
  const maxAttempts = Math.floor(nonNegative('retry.maxAttempts', o.retry?.maxAttempts, 4, 1))
  return {
    issuer,
    tokenEndpoint,
    clientId: o.clientId,
    credentials: c,
    scope: scope === '' ? undefined : scope,
    audience: o.audience,
    audienceParameter: o.audienceParameter ?? 'resource',
    fetch: o.fetch ?? ((input, init) => fetch(input, init)),
    clock: o.clock ?? Date.now,
    skewMs: nonNegative('refreshSkewSeconds', o.refreshSkewSeconds, 30) * 1000,
    maxAttempts,
    baseDelayMs: nonNegative('retry.baseDelayMs', o.retry?.baseDelayMs, 200),
    maxDelayMs: nonNegative('retry.maxDelayMs', o.retry?.maxDelayMs, 5000),
    timeoutMs: nonNegative('timeoutMs', o.timeoutMs, 10_000, 1),
    assertionLifetimeSeconds: nonNegative('assertionLifetimeSeconds', o.assertionLifetimeSeconds, 60, 1),
    dpop: o.dpop,
    sleep: o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
    random: o.random ?? Math.random,
    exchangeCacheSize: Math.floor(nonNegative('exchangeCacheSize', o.exchangeCacheSize, 1000, 1)),
  }
}

interface Cached {
  token: AccessToken
  /** When to fetch a new one (ahead of `expiresAt`). */
  renewAt: number
}

/** Basic credentials per RFC 6749 §2.3.1: both parts form-urlencoded before base64. */
function basicAuth(clientId: string, secret: string): string {
  const enc = (v: string): string => new URLSearchParams({ v }).toString().slice(2)
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`
}

/** `exp` of a JWT access token, read without verifying (only to decide how long to cache it). */
function jwtExp(token: string): number | undefined {
  const payload = token.split('.')[1]
  if (payload === undefined) return undefined
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { exp?: unknown }).exp
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined
  } catch {
    return undefined
  }
}

async function readJson(res: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const body: unknown = await res.json()
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

class ClientCredentialsClient {
  readonly #o: Resolved
  readonly #signer: ClientAssertionSigner | undefined
  readonly #dpop: DpopSigner | undefined
  readonly #nonces = new DpopNonceStore()
  #cached: Cached | undefined
  #inflight: Promise<AccessToken> | undefined
  #endpoint: string | undefined

  constructor(options: Resolved) {
    this.#o = options
    this.#endpoint = options.tokenEndpoint
    this.#signer = options.credentials.type === 'private_key_jwt' ? new ClientAssertionSigner(options.credentials) : undefined
    this.#dpop = options.dpop === undefined ? undefined : new DpopSigner(options.dpop)
  }

  async authorizationHeaders(method: string, url: string): Promise<AuthorizationHeaders> {
    if (typeof method !== 'string' || !/^[A-Za-z]+$/.test(method)) throw new TypeError('authorizationHeaders: method must be an HTTP method')
    let target: string
    try {
      target = httpUrl('url', url)
    } catch {
      throw new TypeError(`authorizationHeaders: url must be an absolute http(s) URL, got ${JSON.stringify(String(url).slice(0, 100))}`)
    }
    const token = await this.token()
    if (token.tokenType === 'Bearer') return { authorization: `Bearer ${token.accessToken}` }
    const proof = this.#dpop!.proof({
      method,
      url: target,
      iat: Math.floor(this.#o.clock() / 1000),
      accessToken: token.accessToken,
      nonce: this.#nonces.get(target),
    })
    return { authorization: `DPoP ${token.accessToken}`, dpop: proof }
  }

  rememberDpopNonce(url: string, response: { headers: Pick<Headers, 'get'> }): void {
    this.#nonces.update(url, response.headers)
  }

  dpopThumbprint(): Promise<string | undefined> {
    return this.#dpop === undefined ? Promise.resolve(undefined) : this.#dpop.thumbprint()
  }

  token(): Promise<AccessToken> {
    const now = this.#o.clock()
    const cached = this.#cached
    if (cached !== undefined && now < cached.renewAt) return Promise.resolve(cached.token)
    // Single flight: however many callers ask at once, one request is made.
    this.#inflight ??= this.#obtain().finally(() => {
      this.#inflight = undefined
    })
    return this.#inflight
  }

  invalidate(): void {
    this.#cached = undefined
  }

  /** One grant request (parameters besides client authentication), retried as the client's own. */
  request(grant: URLSearchParams): Promise<AccessToken> {
    return this.#withRetries(grant)
  }

  /** RFC 6749 §4.4.2: the client's own token. */
  #clientCredentials(): URLSearchParams {
    const o = this.#o
    const grant = new URLSearchParams({ grant_type: 'client_credentials' })
    if (o.scope !== undefined) grant.set('scope', o.scope)
    if (o.audience !== undefined) grant.set(o.audienceParameter, o.audience)
    return grant
  }

  async #obtain(): Promise<AccessToken> {
    try {
      const token = await this.#withRetries(this.#clientCredentials())
      const now = this.#o.clock()
      const lifetime = token.expiresAt - now
      if (lifetime > 0) this.#cached = { token, renewAt: now + Math.max(lifetime - this.#o.skewMs, lifetime / 2) }
      return token
    } catch (err) {
      // A renewal that fails while the current token is still valid does not fail the caller.
      const cached = this.#cached
      if (cached !== undefined && this.#o.clock() < cached.token.expiresAt - 1000) return cached.token
      throw err
    }
  }

  /**
   * The token request with its retries, in one `gatehouse.token_request` span (issue 19): grant
   * type, client id, attempts and outcome (`ok` or the error code), never a token, secret or
   * assertion. Each attempt's POST is the undici instrumentation's child span, with `traceparent`.
   */
  async #withRetries(grant: URLSearchParams): Promise<AccessToken> {
    return await tracer.startActiveSpan('gatehouse.token_request', { kind: SpanKind.INTERNAL }, async (span) => {
      if (span.isRecording()) {
        span.setAttribute('oauth.grant_type', grant.get('grant_type') ?? '')
        span.setAttribute('oauth.client_id', this.#o.clientId)
      }
      try {
        const token = await this.#retried(grant, span)
        span.setAttribute('gatehouse.outcome', 'ok')
        return token
      } catch (err) {
        const code = err instanceof TokenClientError ? err.code : 'error'
        span.setAttribute('gatehouse.outcome', code)
        span.setStatus({ code: SpanStatusCode.ERROR, message: code })
        throw err
      } finally {
        span.end()
      }
    })
  }

  async #retried(grant: URLSearchParams, span: Span): Promise<AccessToken> {
    const o = this.#o
    for (let attempt = 1; ; attempt++) {
      span.setAttribute('gatehouse.attempts', attempt)
      try {
        return await this.#attempt(grant)
      } catch (err) {
        const e = err instanceof TokenClientError ? err : new TokenClientError('network_error', (err as Error).message, { retryable: true, cause: err })
        if (!e.retryable || attempt >= o.maxAttempts) throw e.withAttempts(attempt)
        // Exponential backoff, capped, with jitter in [d/2, d).
        const d = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1))
        await o.sleep(e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, o.maxDelayMs) : d / 2 + (o.random() * d) / 2)
      }
    }
  }

  /** The form and headers of one token request; built anew for each send (assertions and proofs are single-use). */
  async #tokenRequest(endpoint: string, grant: URLSearchParams): Promise<{ headers: Record<string, string>; body: URLSearchParams }> {
    const o = this.#o
    const body = new URLSearchParams(grant)
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    const c = o.credentials
    if (c.type === 'client_secret_basic') {
      headers.authorization = basicAuth(o.clientId, c.secret)
    } else if (c.type === 'client_secret_post') {
      body.set('client_id', o.clientId)
      body.set('client_secret', c.secret)
    } else {
      // RFC 7523bis: the issuer identifier as the sole audience, never the token endpoint URL.
      const assertion = await this.#signer!.sign({
        clientId: o.clientId,
        audience: o.issuer!,
        nowSeconds: Math.floor(o.clock() / 1000),
        lifetimeSeconds: o.assertionLifetimeSeconds,
      })
      body.set('client_id', o.clientId)
      body.set('client_assertion_type', CLIENT_ASSERTION_TYPE)
      body.set('client_assertion', assertion)
    }
    if (this.#dpop !== undefined) {
      // RFC 9449 §5: a proof of the POST to the token endpoint, with the nonce it last sent.
      headers.dpop = this.#dpop.proof({ method: 'POST', url: endpoint, iat: Math.floor(o.clock() / 1000), nonce: this.#nonces.get(endpoint) })
    }
    return { headers, body }
  }

  async #attempt(grant: URLSearchParams): Promise<AccessToken> {
    const o = this.#o
    const endpoint = this.#endpoint ?? (await this.#discover())
    let res: Response
    let json: Record<string, unknown> | undefined
    for (let nonceRetry = false; ; nonceRetry = true) {
      const { headers, body } = await this.#tokenRequest(endpoint, grant)
      res = await this.#request(endpoint, { method: 'POST', headers, body: body.toString() })
      json = await readJson(res)
      if (this.#dpop !== undefined) this.#nonces.update(endpoint, res.headers)
      // RFC 9449 §8: the server wants its nonce in the proof. Once, with the nonce it just sent.
      if (this.#dpop === undefined || nonceRetry || res.status === 200 || json?.error !== 'use_dpop_nonce' || res.headers.get('dpop-nonce') === null) break
    }
    if (res.status !== 200) throw errorFromResponse(res, json)
    const accessToken = json?.access_token
    const rawType = json?.token_type
    if (typeof accessToken !== 'string' || accessToken.length === 0) {
      throw new TokenClientError('invalid_response', 'the token response has no access_token', { status: res.status })
    }
    const type = typeof rawType === 'string' ? rawType.toLowerCase() : undefined
    // A DPoP-bound token is useless without the key; a server that ignores the proof answers Bearer (RFC 9449 §5).
    const tokenType = type === 'bearer' ? 'Bearer' : type === 'dpop' && this.#dpop !== undefined ? 'DPoP' : undefined
    if (tokenType === undefined) {
      throw new TokenClientError('invalid_response', `unsupported token_type ${JSON.stringify(rawType)}`, { status: res.status })
    }
    const now = o.clock()
    const expiresIn = json?.expires_in
    const exp = jwtExp(accessToken)
    const expiresAt =
      typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? now + expiresIn * 1000 : exp !== undefined ? exp * 1000 : now
    return { accessToken, tokenType, expiresAt, scope: typeof json?.scope === 'string' ? json.scope : (grant.get('scope') ?? undefined) }
  }

  async #request(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.#o.fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.#o.timeoutMs) })
    } catch (cause) {
      throw new TokenClientError('network_error', `request to ${url} failed: ${(cause as Error).message}`, { retryable: true, cause })
    }
  }

  /** RFC 8414 / OIDC Discovery: the token endpoint from the issuer's metadata, whose `issuer` must match. */
  async #discover(): Promise<string> {
    const issuer = this.#o.issuer!
    const base = issuer.replace(/\/+$/, '')
    let lastStatus = 0
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const res = await this.#request(`${base}${path}`, { method: 'GET', headers: { accept: 'application/json' } })
      const doc = await readJson(res)
      lastStatus = res.status
      if (res.status === 404) continue
      if (res.status >= 500 || res.status === 429) {
        throw new TokenClientError('discovery_failed', `discovery answered HTTP ${res.status}`, { status: res.status, retryable: true })
      }
      if (res.status !== 200 || doc === undefined) break
      if (doc.issuer !== issuer) {
        throw new TokenClientError('discovery_failed', `the discovery document names issuer ${JSON.stringify(doc.issuer)}, not ${issuer}`)
      }
      if (typeof doc.token_endpoint !== 'string' || !/^https?:\/\//.test(doc.token_endpoint)) {
        throw new TokenClientError('discovery_failed', 'the discovery document has no token_endpoint')
      }
      this.#endpoint = doc.token_endpoint
      return doc.token_endpoint
    }
    throw new TokenClientError('discovery_failed', `no usable discovery document at ${issuer} (HTTP ${lastStatus})`, { status: lastStatus })
  }
}

function errorFromResponse(res: Response, json: Record<string, unknown> | undefined): TokenClientError {
  const status = res.status
  const raw = json?.error
  const description = typeof json?.error_description === 'string' ? json.error_description : undefined
  // 5xx and 429 are worth another try; any other answer (invalid_client, invalid_scope, ...) will not change.
  const retryable = status >= 500 || status === 429
  let code: TokenClientErrorCode
  if (isOAuthErrorCode(raw)) code = raw
  else if (status >= 500) code = status === 503 ? 'temporarily_unavailable' : 'server_error'
  else code = 'invalid_response'
  const retryAfter = Number(res.headers.get('retry-after'))
  return new TokenClientError(code, `token endpoint answered HTTP ${status}${typeof raw === 'string' ? ` ${raw}` : ''}`, {
    status,
    description,
    serverError: typeof raw === 'string' && !isOAuthErrorCode(raw) ? raw : undefined,
    retryable,
    retryAfterMs: retryable && Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
  })
}

/**
 * A client_credentials token source for service-to-service calls (DESIGN §1.6):
 *
 *   const getToken = createTokenClient({ issuer, clientId, credentials, scope })
 *   await fetch(url, { headers: { authorization: `Bearer ${await getToken()}` } })
 *
 * With `dpop`, tokens are DPoP-bound (RFC 9449) and resource calls take
 * `await getToken.authorizationHeaders('GET', url)` instead of a Bearer header.
 *
 * The token is cached until shortly before it expires; concurrent callers
 * share one request; network errors, 5xx and 429 are retried with capped
 * exponential backoff; other 4xx (e.g. `invalid_client`) throw a
 * `TokenClientError` at once, its `code` the OAuth error.
 */
export function createTokenClient(options: TokenClientOptions): TokenClient {
  const resolved = resolve(options)
  const client = new ClientCredentialsClient(resolved)
  const exchanges = new ExchangeCache((grant) => client.request(grant), { ...resolved, jwtExp })
  const get = async (): Promise<string> => (await client.token()).accessToken
  return Object.assign(get, {
    token: () => client.token(),
    authorizationHeaders: (method: string, url: string) => client.authorizationHeaders(method, url),
    rememberDpopNonce: (url: string, response: { headers: Pick<Headers, 'get'> }) => client.rememberDpopNonce(url, response),
    dpopThumbprint: () => client.dpopThumbprint(),
    invalidate: () => {
      client.invalidate()
      exchanges.clear()
    },
    exchange: (request: ExchangeRequest) => exchanges.get(request),
  })
}
