import { UnauthorizedClient } from '@gatehouse/service-kit'
import { audit } from '../audit/trail.js'
import { ACCESS_TOKEN_TYPE, exchangeToken } from '../exchange/token-exchange.js'
import { tokenType } from '../dpop/proofs.js'
import type { GrantHandler } from './types.js'

/**
 * RFC 8693: a service exchanges a user's access token (the subject) for one to call a downstream
 * service on the user's behalf (DESIGN §10.4; the rules are in exchange/). The /token route has
 * already checked that the client's `grant_types` has this grant. A public client cannot prove who
 * it is, so it cannot be the actor the new token names (`unauthorized_client`). §2.2.1: the
 * response names the issued token's type; no refresh token (the subject's family stays the
 * only one, and revoking it ends the exchanged token too).
 */
export const tokenExchangeGrant: GrantHandler = async ({ request, params, resources, client, deps, dpop }) => {
  if (client.method === 'none') throw new UnauthorizedClient('a public client may not exchange tokens')
  const c = client.client
  const { token, scope, subject, audience } = await exchangeToken(deps, c, params, resources, dpop?.jkt)
  deps.metrics.tokensIssued.inc({ grant_type: 'token_exchange' })
  audit(
    request.log,
    deps.audit,
    { event: 'token.exchanged', client_id: c.id, sub: subject.sub, audience, family_id: subject.sid, subject_client_id: subject.client_id, jti: token.jti },
    'token exchanged',
  )
  return { access_token: token.token, issued_token_type: ACCESS_TOKEN_TYPE, token_type: tokenType(dpop), expires_in: token.expiresIn, scope }
}
