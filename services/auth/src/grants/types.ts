import type { FastifyRequest } from 'fastify'
import type { AuthenticatedClient } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { Params } from '../http/form.js'

/** RFC 6749 §5.1 (+ OIDC Core §3.1.3.3). */
export interface TokenResponse {
  access_token: string
  /** RFC 8693 §2.2.1: token exchange names the type of what it issued. */
  issued_token_type?: string
  token_type: 'Bearer'
  expires_in: number
  scope: string
  refresh_token?: string
  id_token?: string
}

export interface GrantContext {
  request: FastifyRequest
  params: Params
  client: AuthenticatedClient
  deps: AuthDeps
}

export type GrantHandler = (ctx: GrantContext) => Promise<TokenResponse>
