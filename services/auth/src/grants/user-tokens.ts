import type { FastifyRequest } from 'fastify'
import type { Client } from '../clients.js'
import type { AuthDeps } from '../deps.js'
import type { User } from '../users.js'
import type { TokenResponse } from './types.js'

export interface UserTokenInput {
  request: FastifyRequest
  deps: AuthDeps
  client: Client
  user: User
  scope: string
  authTime: number
  grantType: string
  sessionId?: string
}

/**
 * Starts a refresh family (when the client may refresh) and issues the first
 * access token of it. The family id is the tokens' `sid`.
 */
export async function issueUserTokens(input: UserTokenInput): Promise<TokenResponse> {
  const { request, deps, client, user, scope, authTime, grantType } = input
  let refreshToken: string | undefined
  let sid: string | undefined
  if (client.grantTypes.has('refresh_token')) {
    const familyInput: Parameters<AuthDeps['families']['create']>[0] = { userId: user.id, clientId: client.id, scope, authTime }
    if (input.sessionId !== undefined) familyInput.sessionId = input.sessionId
    const { family, refreshToken: rt } = await deps.families.create(familyInput)
    refreshToken = rt
    sid = family.id
  }
  const claims: Parameters<AuthDeps['tokens']['issue']>[0] = { sub: user.id, clientId: client.id, audience: client.audience, scope, roles: user.roles, authTime }
  if (sid !== undefined) claims.sid = sid
  const at = await deps.tokens.issue(claims)
  deps.metrics.tokensIssued.inc({ grant_type: grantType })
  request.log.info({ event: 'token.issued', grant_type: grantType, client_id: client.id, sub: user.id, jti: at.jti, family_id: sid }, 'token issued')
  const res: TokenResponse = { access_token: at.token, token_type: 'Bearer', expires_in: at.expiresIn, scope }
  if (refreshToken !== undefined) res.refresh_token = refreshToken
  return res
}
