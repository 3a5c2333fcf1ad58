import type { FastifyRequest } from 'fastify'
import type { AuthenticatedClient } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { Params } from '../http/form.js'
import type { BoundKey } from '../dpop/proofs.js'

/** RFC 6749 §5.1 (+ OIDC Core §3.1.3.3). */
export interface TokenResponse {
  access_token: string
  /** RFC 8693 §2.2.1: token exchange names the type of what it issued. */
  issued_token_type?: string
  token_type: 'Bearer' | 'DPoP'
  expires_in: number
  scope: string
  refresh_token?: string
  id_token?: string
}

export interface GrantContext {
  request: FastifyRequest
  params: Params
  /** Every `resource` value of the request (RFC 8707 §2; read with requestedResource). */
  resources: readonly string[]
  client: AuthenticatedClient
  deps: AuthDeps
  /** The DPoP key of the request's proof (dpop/): the access token is bound to it (RFC 9449 §5). */
  dpop?: BoundKey
}

export type GrantHandler = (ctx: GrantContext) => Promise<TokenResponse>
