import type { FastifyRequest } from 'fastify'
import { releasedRoles, type Client } from '../directory/clients.js'
import type { AuthDeps } from '../runtime/deps.js'
import { signIdToken } from '../tokens/id-token.js'
import { splitScope } from '../tokens/scope.js'
import { scopeForAudience } from '../tokens/resource-indicators.js'
import type { User } from '../directory/users.js'
import type { TokenResponse } from './types.js'
import { tokenType, type BoundKey } from '../dpop/proofs.js'
import { acrOf } from '../mfa/assurance.js'

export interface UserTokenInput {
  request: FastifyRequest
  deps: AuthDeps
  client: Client
  user: User
  /** The granted scope (the family's); the access token carries its part for `audience`. */
  scope: string
  /** The access token's audience, one of `resources`. */
  audience: string
  /** The resources granted to the family (RFC 8707); each refresh picks one. */
  resources: readonly string[]
  authTime: number
  grantType: string
  /** The login session (browser logins): the families' `sessionId` and the ID token's `sid`. */
  sessionId?: string
  /** From the authorization request, echoed in the ID token (OIDC Core §3.1.2.1). */
  nonce?: string
  /** The request's DPoP key: the access token is bound to it, and a public client's family too (RFC 9449 §5). */
  dpop?: BoundKey | undefined
  /**
   * How the user authenticated (RFC 8176): the ID token's `amr` and `acr`, kept in the family for
   * the ID tokens of its refreshes (OIDC Core §12.2); absent when unknown (no amr, no acr).
   */
  amr?: readonly string[] | undefined
  /** The access tokens carry `acr` (RFC 9068 §2.2.1): the authorization asked for one (acr_values, require_mfa). */
  acrInAccessTokens?: boolean
}

/**
 * Starts a refresh family and issues the first access token of it. The family id is the tokens'
 * `sid`, whatever the grant: every user token is revocable (DESIGN §10.1), by logout, a replayed
 * code or an admin, through the family. The refresh token goes out only to a client allowed the
 * refresh grant; for the others the family is only the access token's revocable handle.
 */
export async function issueUserTokens(input: UserTokenInput): Promise<TokenResponse> {
  return (await startUserTokens(input)).response
}

/**
 * issueUserTokens, also naming the family it started (the authorization-code grant records it,
 * so a replayed code can revoke it). With `openid` in the scope an ID token comes along
 * (OIDC Core §3.1.3.3) whose `sid` is the login session, not the family.
 */
export async function startUserTokens(input: UserTokenInput): Promise<{ response: TokenResponse; familyId: string }> {
  const { request, deps, client, user, scope, audience, authTime, grantType } = input
  const jkt = input.dpop?.jkt
  // A confidential client's refresh token is bound to its authentication; a public client's to its DPoP key.
  const familyJkt = client.authMethod === 'none' ? jkt : undefined
  const { amr } = input
  const acrInAccessTokens = input.acrInAccessTokens === true && amr !== undefined
  const { family, refreshToken: rt } = await deps.families.create({
    userId: user.id, clientId: client.id, scope, authTime, sessionId: input.sessionId, resources: [...input.resources], ...(familyJkt === undefined ? {} : { jkt: familyJkt }),
    ...(amr === undefined ? {} : { amr }), ...(acrInAccessTokens ? { acrInAccessTokens } : {}),
  })
  const refreshToken = client.grantTypes.has('refresh_token') ? rt : undefined
  const sid = family.id
  const roles = releasedRoles(client, user.roles)
  // RFC 6749 §5.1: the response's scope is the access token's.
  const tokenScope = scopeForAudience(scope, audience, client, deps.resources.list())
  const at = await deps.tokens.issue({ sub: user.id, clientId: client.id, audience, scope: tokenScope, authTime, sid, roles, jkt, ...(acrInAccessTokens && amr !== undefined ? { acr: acrOf(amr) } : {}) })
  deps.metrics.tokensIssued.inc({ grant_type: grantType })
  request.log.info({ event: 'token.issued', grant_type: grantType, client_id: client.id, sub: user.id, jti: at.jti, family_id: sid, aud: audience }, 'token issued')
  const res: TokenResponse = { access_token: at.token, token_type: tokenType(input.dpop), expires_in: at.expiresIn, scope: tokenScope }
  if (refreshToken !== undefined) res.refresh_token = refreshToken
  if (splitScope(scope).includes('openid')) {
    res.id_token = await signIdToken(
      { issuer: deps.config.issuer, keys: deps.keys, ttlSeconds: deps.tokens.ttl, clock: deps.clock },
      { sub: user.id, clientId: client.id, authTime, accessToken: at.token, nonce: input.nonce, sid: input.sessionId, amr },
    )
  }
  return { response: res, familyId: sid }
}
