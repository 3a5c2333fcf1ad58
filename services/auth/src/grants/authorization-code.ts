import { InvalidGrant, InvalidRequest, InvalidTarget } from '@gatehouse/service-kit'
import { revokeFamily } from '../families/family-revocation.js'
import { required } from '../http/form.js'
import { isCodeVerifier, verifierMatches } from '../authorize/pkce.js'
import { startUserTokens } from './user-tokens.js'
import { checkCodeBinding } from '../dpop/proofs.js'
import { grantedResources, requestedResource, tokenAudience } from '../tokens/resource-indicators.js'
import type { GrantHandler } from './types.js'
import { audit } from '../audit/trail.js'
import { mandatoryAcr, signInMeets } from '../mfa/assurance.js'

const REJECTED = 'the authorization code is invalid, expired or was already used'

/**
 * RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5–4.6), required for every client. The code is spent
 * by the first presentation whatever its outcome, so a wrong verifier cannot be retried.
 * `resource` (RFC 8707 §2.2) picks the access token's audience among those the code granted; its
 * form and whether the client is allowed it are checked before the code is spent.
 */
export const authorizationCodeGrant: GrantHandler = async ({ request, params, resources, client, deps, dpop }) => {
  const code = required(params, 'code')
  const redirectUri = required(params, 'redirect_uri')
  const verifier = required(params, 'code_verifier')
  if (!isCodeVerifier(verifier)) throw new InvalidRequest('code_verifier must be 43-128 unreserved characters (RFC 7636 §4.1)')
  const c = client.client
  const wanted = requestedResource(resources, c)
  const outcome = await deps.codes.consume(code)

  switch (outcome.status) {
    case 'ok':
      break
    case 'reused': {
      // RFC 6749 §4.1.2 / §10.5: deny, and revoke what the first use issued.
      audit(
        request.log,
        deps.audit,
        { event: 'authorization_code.reused', client_id: c.id, code_client_id: outcome.grant.clientId, sub: outcome.grant.userId, family_id: outcome.familyId, ip: request.ip },
        'authorization code used twice',
        'warn',
      )
      if (outcome.familyId !== undefined) await revokeFamily(deps, request.log, outcome.familyId, 'code_replay')
      throw new InvalidGrant(REJECTED, { detail: 'reused' })
    }
    default:
      throw new InvalidGrant(REJECTED, { detail: outcome.status })
  }

  const g = outcome.grant
  // Bound to the client it was issued to, the redirect URI of its request, and the PKCE challenge.
  if (g.clientId !== c.id) throw new InvalidGrant(REJECTED, { detail: 'issued to another client' })
  if (g.redirectUri !== redirectUri) throw new InvalidGrant('redirect_uri does not match the authorization request', { detail: 'redirect_uri mismatch' })
  if (!verifierMatches(verifier, g.codeChallenge)) throw new InvalidGrant('the code_verifier does not match the code_challenge', { detail: 'pkce mismatch' })
  // RFC 9449 §10: a code requested with dpop_jkt (or pushed with a proof) is exchanged only with a proof of that key.
  checkCodeBinding(g.dpopJkt, dpop ?? null)
  const granted = grantedResources(g.resources, c)
  const audience = tokenAudience(wanted, granted, c)
  if (audience === undefined) throw new InvalidTarget('none of the granted resources is allowed for this client any more')

  // require_mfa (DESIGN §10.5): whatever path produced the code, a sign-in without a second factor
  // never yields tokens for such a client (the /authorize and /login decisions are the first line).
  if (!signInMeets(g.amr ?? ['pwd'], mandatoryAcr(c))) throw new InvalidGrant(REJECTED, { detail: 'the sign-in does not meet require_mfa' })
  const user = await deps.users.findById(g.userId)
  if (user === null || user.disabled) throw new InvalidGrant(REJECTED, { detail: 'user gone or disabled' })
  // A logout between the redirect and the exchange ends what the code would start.
  if ((await deps.sessions.get(g.sessionId)) === null) throw new InvalidGrant(REJECTED, { detail: 'login session ended' })

  const { response, familyId } = await startUserTokens({
    request, deps, client: c, user, scope: g.scope, audience, resources: granted, authTime: g.authTime, grantType: 'authorization_code', sessionId: g.sessionId, nonce: g.nonce, dpop,
    // A code from before amr was recorded came from a password sign-in.
    amr: g.amr ?? ['pwd'],
    // RFC 9068 §2.2.1: acr in the access tokens when the authorization asked for an assurance.
    acrInAccessTokens: g.acrValues !== undefined || c.requireMfa,
  })
  if ((await deps.codes.recordFamily(code, familyId)) === 'replayed') {
    // A second use arrived while this one was issuing: it could not name the family, so revoke it here.
    audit(request.log, deps.audit, { event: 'authorization_code.reused', client_id: c.id, sub: user.id, family_id: familyId, ip: request.ip }, 'authorization code used twice', 'warn')
    await revokeFamily(deps, request.log, familyId, 'code_replay')
    throw new InvalidGrant(REJECTED, { detail: 'reused during exchange' })
  }
  // A logout (or an admin ending the user's sessions) that ran after the check above could not
  // see the family started here: look again, so no token outlives its session (DESIGN §10.1).
  if ((await deps.sessions.get(g.sessionId)) === null) {
    await revokeFamily(deps, request.log, familyId, 'logout')
    throw new InvalidGrant(REJECTED, { detail: 'login session ended during exchange' })
  }
  return response
}
