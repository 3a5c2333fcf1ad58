import { randomUUID, sign as nodeSign, KeyObject } from 'node:crypto'
import { isOAuthError } from '@gatehouse/service-kit'
import Fastify, { type FastifyInstance } from 'fastify'
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'

/** Plays the auth service in tests: RSA keys, discovery + JWKS over HTTP, and token signing. */

export interface SigningKey {
  kid: string
  privateKey: CryptoKey
  publicKey: CryptoKey
  publicJwk: JWK
}

export async function makeKey(kid?: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(publicKey)
  const id = kid ?? (await calculateJwkThumbprint(jwk))
  return { kid: id, privateKey, publicKey, publicJwk: { ...jwk, kid: id, alg: 'RS256', use: 'sig' } }
}

export const AUDIENCE = 'api://resource'

export interface FakeIssuer {
  readonly issuer: string
  readonly jwksUri: string
  /** Requests served (including failures). */
  readonly counts: { discovery: number; jwks: number; notModified: number }
  /** `Cache-Control: public, max-age=N` on the JWKS. */
  maxAge: number
  /** When set, the JWKS endpoint answers this status instead. */
  failWith: number | undefined
  publish(keys: SigningKey[]): void
  close(): Promise<void>
}

export async function startIssuer(keys: SigningKey[], options: { maxAge?: number; issuerOverride?: string } = {}): Promise<FakeIssuer> {
  // forceCloseConnections: a client aborted mid-connect (a verifier closed during its first fetch) must not keep close() waiting.
  const app: FastifyInstance = Fastify({ logger: false, forceCloseConnections: true })
  let published = keys
  let etag = `"${randomUUID()}"`
  let base = ''
  const state: FakeIssuer = {
    get issuer() {
      return base
    },
    get jwksUri() {
      return `${base}/jwks.json`
    },
    counts: { discovery: 0, jwks: 0, notModified: 0 },
    maxAge: options.maxAge ?? 300,
    failWith: undefined,
    publish(next) {
      published = next
      etag = `"${randomUUID()}"`
    },
    close: async () => {
      await app.close()
    },
  }
  app.get('/.well-known/openid-configuration', async () => {
    state.counts.discovery++
    return { issuer: options.issuerOverride ?? base, jwks_uri: `${base}/jwks.json`, token_endpoint: `${base}/token` }
  })
  app.get('/jwks.json', async (request, reply) => {
    state.counts.jwks++
    if (state.failWith !== undefined) return reply.code(state.failWith).send({ error: 'temporarily_unavailable' })
    void reply.header('cache-control', `public, max-age=${state.maxAge}`).header('etag', etag)
    if (request.headers['if-none-match'] === etag) {
      state.counts.notModified++
      return reply.code(304).send()
    }
    return { keys: published.map((k) => k.publicJwk) }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const addr = app.server.address()
  base = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`
  return state
}

export interface TokenInput {
  key: SigningKey
  issuer: string
  /** Seconds since the epoch used for iat / exp defaults. */
  now: number
  claims?: Record<string, unknown>
  header?: Record<string, unknown>
  /** Claim names to leave out. */
  omit?: string[]
}

export function userClaims(issuer: string, now: number): Record<string, unknown> {
  return {
    iss: issuer,
    sub: 'user-alice',
    aud: AUDIENCE,
    exp: now + 900,
    iat: now,
    jti: randomUUID(),
    client_id: 'web-app',
    scope: 'openid documents:read',
    roles: ['admin'],
    sid: 'family-1',
    auth_time: now,
  }
}

export function serviceClaims(issuer: string, now: number): Record<string, unknown> {
  return {
    iss: issuer,
    sub: 'billing',
    aud: AUDIENCE,
    exp: now + 900,
    iat: now,
    jti: randomUUID(),
    client_id: 'billing',
    scope: 'internal:read',
  }
}

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/**
 * Signs exactly the header and claims given (RS256 over node:crypto), so
 * tests can produce headers jose would refuse to produce.
 */
export function rawSign(header: Record<string, unknown>, claims: Record<string, unknown>, key: SigningKey): string {
  const input = `${b64url(header)}.${b64url(claims)}`
  const signature = nodeSign('sha256', Buffer.from(input), KeyObject.from(key.privateKey))
  return `${input}.${signature.toString('base64url')}`
}

export function unsigned(header: Record<string, unknown>, claims: Record<string, unknown>, signature = ''): string {
  return `${b64url(header)}.${b64url(claims)}.${signature}`
}

/** A user token by default; `claims` override, `omit` removes. */
export function token(input: TokenInput): string {
  const claims = { ...userClaims(input.issuer, input.now), ...input.claims }
  for (const name of input.omit ?? []) delete claims[name]
  const header = { alg: 'RS256', typ: 'at+jwt', kid: input.key.kid, ...input.header }
  return rawSign(header, claims, input.key)
}

/** The same through jose's SignJWT, as the auth service does it. */
export async function joseToken(input: TokenInput): Promise<string> {
  const claims = { ...userClaims(input.issuer, input.now), ...input.claims }
  return await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: input.key.kid }).sign(input.key.privateKey)
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.now()): { now: () => number; set(ms: number): void; advance(ms: number): void; seconds(): number } {
  let t = start
  return {
    now: () => t,
    set: (ms) => {
      t = ms
    },
    advance: (ms) => {
      t += ms
    },
    seconds: () => Math.floor(t / 1000),
  }
}

/** Resolves with the first emitted value, or rejects after `ms` (waiting for an event, not sleeping). */
export function waitFor<T>(subscribe: (resolve: (v: T) => void) => void, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    subscribe((v) => {
      clearTimeout(timer)
      resolve(v)
    })
  })
}

/** 'accepted'; the logged reason of an invalid_token refusal; or "<status> <code>" for anything else. */
export async function outcome(v: { verify(token: string): Promise<unknown> }, jwt: string): Promise<string> {
  try {
    await v.verify(jwt)
    return 'accepted'
  } catch (err) {
    if (!isOAuthError(err)) throw err
    if (err.code === 'invalid_token' && err.statusCode === 401) return err.detail ?? 'no detail'
    return `${err.statusCode} ${err.code}`
  }
}
