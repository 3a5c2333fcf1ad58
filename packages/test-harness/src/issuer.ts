import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { makeKey, rawSign, serviceClaims, userClaims, type SigningKey } from './keys.js'

/**
 * Plays the auth service for the verifier's and the resource service's tests: discovery, a JWKS
 * (with ETag, max-age, a failure switch and a gate), a client_credentials token endpoint for
 * client_secret_basic clients, and tokens signed with the published key. Plain node:http, so a
 * test sees exactly what it set.
 */

export interface FakeIssuerOptions {
  /** The keys published (the first signs userToken/serviceToken); default one fresh RS256 key. */
  keys?: SigningKey[]
  /** `Cache-Control: public, max-age=N` on the JWKS; default 300. */
  maxAge?: number
  /** The `issuer` discovery names instead of its own URL. */
  issuerOverride?: string
  /** The clock of userToken/serviceToken (ms); default the real time. */
  clock?: () => number
}

export interface FakeIssuer {
  readonly issuer: string
  readonly jwksUri: string
  readonly tokenEndpoint: string
  /** Requests served (including failures). */
  readonly counts: { discovery: number; jwks: number; notModified: number; token: number }
  /** `Cache-Control: public, max-age=N` on the JWKS. */
  maxAge: number
  /** When set, the JWKS endpoint answers this status instead. */
  failWith: number | undefined
  /** When set, each JWKS request waits for it (and `onJwks` is told first). */
  holdJwks: Promise<void> | undefined
  onJwks: (() => void) | undefined
  /** client_id -> secret and allowed scope, for client_secret_basic at /token. */
  readonly clients: Map<string, { secret: string; scope: string }>
  /** The keys published now. */
  readonly keys: readonly SigningKey[]
  /** Publishes another key set (with a new ETag). */
  publish(keys: SigningKey[]): void
  /** A user's access token (scope `openid documents:read documents:write`); `claims` override (undefined removes). */
  userToken(claims?: Record<string, unknown>): string
  /** A service's (client_credentials) access token; `claims` override. */
  serviceToken(claims?: Record<string, unknown>): string
  close(): Promise<void>
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body))
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = ''
  for await (const chunk of req) body += (chunk as Buffer).toString('utf8')
  return body
}

/** `Basic base64(id:secret)` with the form-encoding of RFC 6749 §2.3.1, or []. */
function basicCredentials(header: string | undefined): string[] {
  const m = /^Basic (.+)$/.exec(header ?? '')
  if (m === null) return []
  return Buffer.from(m[1]!, 'base64').toString().split(':').map((v) => decodeURIComponent(v.replace(/\+/g, ' ')))
}

export async function startFakeIssuer(options: FakeIssuerOptions = {}): Promise<FakeIssuer> {
  let published: SigningKey[] = options.keys ?? [await makeKey('test-key-1')]
  let etag = `"${randomUUID()}"`
  let base = ''
  const nowS = (): number => Math.floor((options.clock ?? Date.now)() / 1000)
  /** Exactly these claims, signed with the first published key. */
  const sign = (claims: Record<string, unknown>): string => {
    const key = published[0]
    if (key === undefined) throw new Error('the fake issuer publishes no key to sign with')
    return rawSign({ alg: 'RS256', typ: 'at+jwt', kid: key.kid }, claims, key)
  }

  const state: FakeIssuer = {
    get issuer() {
      return base
    },
    get jwksUri() {
      return `${base}/jwks.json`
    },
    get tokenEndpoint() {
      return `${base}/token`
    },
    counts: { discovery: 0, jwks: 0, notModified: 0, token: 0 },
    maxAge: options.maxAge ?? 300,
    failWith: undefined,
    holdJwks: undefined,
    onJwks: undefined,
    clients: new Map(),
    get keys() {
      return published
    },
    publish(next) {
      published = next
      etag = `"${randomUUID()}"`
    },
    userToken: (claims = {}) => sign({ ...userClaims(base, nowS()), scope: 'openid documents:read documents:write', ...claims }),
    serviceToken: (claims = {}) => sign({ ...serviceClaims(base, nowS()), ...claims }),
    close: async () => {
      // A client aborted mid-connect (a verifier closed during its first fetch) must not keep close() waiting.
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }

  const jwks = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    state.counts.jwks++
    state.onJwks?.()
    if (state.holdJwks !== undefined) await state.holdJwks
    if (state.failWith !== undefined) return json(res, state.failWith, { error: 'temporarily_unavailable' })
    const headers = { 'cache-control': `public, max-age=${state.maxAge}`, etag }
    if (req.headers['if-none-match'] === etag) {
      state.counts.notModified++
      res.writeHead(304, headers).end()
      return
    }
    json(res, 200, { keys: published.map((k) => k.publicJwk) }, headers)
  }

  const tokenEndpoint = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    state.counts.token++
    const form = new URLSearchParams(await readBody(req))
    const [id, secret] = basicCredentials(req.headers.authorization)
    const client = id === undefined ? undefined : state.clients.get(id)
    if (client === undefined || client.secret !== secret) {
      return json(res, 401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="test"' })
    }
    if (form.get('grant_type') !== 'client_credentials') return json(res, 400, { error: 'unsupported_grant_type' })
    const allowed = client.scope.split(' ')
    const scope = (form.get('scope') ?? client.scope).split(' ').filter((s) => allowed.includes(s)).join(' ')
    json(res, 200, { access_token: state.serviceToken({ sub: id, client_id: id, scope }), token_type: 'Bearer', expires_in: 900, scope }, { 'cache-control': 'no-store' })
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const route =
      req.method === 'GET' && path === '/.well-known/openid-configuration'
        ? async () => {
            state.counts.discovery++
            json(res, 200, { issuer: options.issuerOverride ?? base, jwks_uri: state.jwksUri, token_endpoint: state.tokenEndpoint })
          }
        : req.method === 'GET' && path === '/jwks.json'
          ? () => jwks(req, res)
          : req.method === 'POST' && path === '/token'
            ? () => tokenEndpoint(req, res)
            : async () => json(res, 404, { error: 'not_found' })
    route().catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'server_error' })
      else res.destroy()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return state
}
