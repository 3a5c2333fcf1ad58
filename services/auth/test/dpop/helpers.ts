import type { FastifyInstance } from 'fastify'
import { dpopProof, type DpopKey, type DpopProofInput } from '@gatehouse/test-harness'
import { basic, form } from '../helpers.js'

/** A client that must use DPoP (RFC 9449 §5.2 `dpop_bound_access_tokens`). */
export const DPOP_ONLY_CLIENT = {
  client_id: 'dpop-svc',
  token_endpoint_auth_method: 'client_secret_basic',
  client_secret: 'dpop-svc-secret',
  grant_types: ['client_credentials'],
  scope: 'internal:read',
  audience: 'api://resource',
  dpop_bound_access_tokens: true,
}

export interface ProofTarget {
  issuer: string
  /** ms */
  now: () => number
}

/** A proof for `POST <issuer>/token` (or what `over` says) made now by `key`. */
export function tokenProof(h: ProofTarget, key: DpopKey, over: Partial<DpopProofInput> = {}): string {
  return dpopProof({ key, htm: 'POST', htu: `${h.issuer}/token`, iat: Math.floor(h.now() / 1000), ...over })
}

/** POST /token with an optional DPoP header. */
export async function tokenWithProof(app: FastifyInstance, params: Record<string, string>, proof: string | undefined, auth: string | null = basic('cli', 'cli-secret')) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (auth !== null) headers.authorization = auth
  if (proof !== undefined) headers.dpop = proof
  return await app.inject({ method: 'POST', url: '/token', headers, payload: form(params) })
}

/** The payload of a JWT, unverified (the tests read what the service signed). */
export function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
}

export const PASSWORD = { grant_type: 'password', username: 'alice', password: 'alice-password' }
