import { UnauthorizedClient } from '@gatehouse/service-kit'
import { resolveScope } from '../tokens/scope.js'
import { allowedResources, requestedResource, scopeForAudience, tokenAudience } from '../tokens/resource-indicators.js'
import type { GrantHandler } from './types.js'
import { tokenType } from '../dpop/proofs.js'

/**
 * RFC 6749 §4.4: a confidential client acting for itself (DESIGN §1 flow 6). The token's `sub`
 * is the client id; it carries no `roles` and no `sid`, and no refresh token is issued (§4.4.3:
 * "A refresh token SHOULD NOT be included"). Allowed scopes come from the client's configuration;
 * the audience is its default one or the `resource` it asks for among those it is allowed (RFC 8707).
 */
export const clientCredentialsGrant: GrantHandler = async ({ request, params, resources, client, deps, dpop }) => {
  const c = client.client
  // Public clients cannot authenticate, so they cannot act for themselves (RFC 6749 §4.4).
  if (client.method === 'none') throw new UnauthorizedClient('a public client may not use client_credentials')
  const granted = resolveScope(params.scope, c.scopes)
  const audience = tokenAudience(requestedResource(resources, c), allowedResources(c), c) ?? c.audience
  const scope = scopeForAudience(granted, audience, c, deps.resources.list())
  const at = await deps.tokens.issue({ sub: c.id, clientId: c.id, audience, scope, jkt: dpop?.jkt })
  deps.metrics.tokensIssued.inc({ grant_type: 'client_credentials' })
  request.log.info({ event: 'token.issued', grant_type: 'client_credentials', client_id: c.id, sub: c.id, jti: at.jti, auth_method: client.method, aud: audience }, 'token issued')
  return { access_token: at.token, token_type: tokenType(dpop), expires_in: at.expiresIn, scope }
}
