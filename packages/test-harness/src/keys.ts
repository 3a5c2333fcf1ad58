import { KeyObject, randomUUID, sign as nodeSign } from 'node:crypto'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'

/**
 * Key and token fixtures: signing keys as the auth service holds them, the claims of its access
 * tokens, and signing over node:crypto so that a test can produce what jose would refuse to
 * (a wrong `typ`, `alg: none`, a header it does not know).
 */

/** The resource service's audience in every fixture. */
export const AUDIENCE = 'api://resource'

export type SigningAlgorithm = 'RS256' | 'ES256'

export interface SigningKey {
  kid: string
  alg: SigningAlgorithm
  privateKey: CryptoKey
  publicKey: CryptoKey
  /** The public JWK as a JWKS publishes it (`kid`, `alg`, `use: sig`). */
  publicJwk: JWK
}

/** A fresh key pair; the kid is its JWK thumbprint unless given. */
export async function makeKey(kid?: string, alg: SigningAlgorithm = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = await exportJWK(publicKey)
  const id = kid ?? (await calculateJwkThumbprint(jwk))
  return { kid: id, alg, privateKey, publicKey, publicJwk: { ...jwk, kid: id, alg, use: 'sig' } }
}

/** The claims of a user's access token issued at `now` (seconds) to the `web-app` client. */
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

/** The claims of a service's (client_credentials) access token issued at `now` (seconds). */
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

/** Signs exactly the header and claims given (RS256 over node:crypto), so tests can produce headers jose would refuse to produce. */
export function rawSign(header: Record<string, unknown>, claims: Record<string, unknown>, key: Pick<SigningKey, 'privateKey'>): string {
  const input = `${b64url(header)}.${b64url(claims)}`
  const signature = nodeSign('sha256', Buffer.from(input), KeyObject.from(key.privateKey))
  return `${input}.${signature.toString('base64url')}`
}

/** A JWT with the signature given (none by default). */
export function unsigned(header: Record<string, unknown>, claims: Record<string, unknown>, signature = ''): string {
  return `${b64url(header)}.${b64url(claims)}.${signature}`
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

/** An access token (`typ: at+jwt`, RS256), a user's by default; `claims` override, `omit` removes. */
export function token(input: TokenInput): string {
  const claims = { ...userClaims(input.issuer, input.now), ...input.claims }
  for (const name of input.omit ?? []) delete claims[name]
  const header = { alg: 'RS256', typ: 'at+jwt', kid: input.key.kid, ...input.header }
  return rawSign(header, claims, input.key)
}

