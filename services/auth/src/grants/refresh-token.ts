import { SpanStatusCode, trace } from '@opentelemetry/api'
import { InvalidDpopProof, InvalidGrant, InvalidScope } from '@gatehouse/service-kit'
import { announceRevoked, revokeFamily } from '../families/family-revocation.js'
import type { Family } from '../families/types.js'
import { required } from '../http/form.js'
import { splitScope } from '../tokens/scope.js'
import { grantedResources, requestedResource, scopeForAudience, tokenAudience, type ResourceHolder } from '../tokens/resource-indicators.js'
import { audit } from '../audit/trail.js'
import type { GrantHandler, TokenResponse } from './types.js'
import { signIdToken } from '../tokens/id-token.js'
import { AMR_PASSWORD, acrOf, mandatoryAcr, signInMeets } from '../mfa/assurance.js'
import { proofRefused, tokenType } from '../dpop/proofs.js'

/** The auth service's tracer (@opentelemetry/api: the no-op one unless tracing is on, docs/operations.md). */
const tracer = trace.getTracer('gatehouse-auth')

/**
 * What a refresh may narrow to (RFC 6749 §6, RFC 8707 §2.2): a scope within the family's, a
 * resource within its granted set. Throws invalid_scope or invalid_target.
 */
function checkNarrowing(family: Family, asked: readonly string[] | undefined, wanted: string | undefined, client: ResourceHolder): void {
  const granted = splitScope(family.scope)
  if (asked !== undefined && asked.some((s) => !granted.includes(s))) throw new InvalidScope('the scope exceeds what was granted')
  if (wanted !== undefined) tokenAudience(wanted, grantedResources(family.resources, client), client)
}

/** RFC 6749 §6 with rotation and reuse detection (DESIGN §5); `resource` per RFC 8707 §2.2. */
export const refreshTokenGrant: GrantHandler = async ({ request, params, resources, client, deps, dpop }) => {
  const presented = required(params, 'refresh_token')
  // Every check before the rotation: a refused request must spend nothing (issue 12, finding 4).
  // Only a request that narrows the scope or names a resource pays a lookup; a family's scope
  // and resources never change.
  const wanted = requestedResource(resources, client.client)
  let asked: string[] | undefined
  if (params.scope !== undefined) {
    asked = [...new Set(splitScope(params.scope))]
    if (asked.length === 0) throw new InvalidScope('the scope exceeds what was granted')
  }
  if (asked !== undefined || wanted !== undefined) {
    const found = await deps.families.lookup(presented)
    // Another client's token is left to the rotation (client_mismatch): no answer here tells it apart.
    if (found !== null && found.family.clientId === client.client.id) checkNarrowing(found.family, asked, wanted, client.client)
  }
  // A family bound to a DPoP key (RFC 9449 §5) is checked against the proof inside the rotation.
  // A public client's family not yet bound is bound to the key of its first proof, in the same step (§5).
  // One `gatehouse.family.rotate` span around the rotation (with Redis, the ioredis
  // instrumentation's EVALSHA is its child): the outcome, never the token or the family id.
  const outcome = await tracer.startActiveSpan('gatehouse.family.rotate', async (span) => {
    try {
      const rotated = await deps.families.rotate(presented, {
        clientId: client.client.id,
        ...(dpop === undefined ? {} : { jkt: dpop.jkt, bind: client.method === 'none' }),
      })
      span.setAttribute('gatehouse.rotation.outcome', rotated.status)
      return rotated
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).name })
      throw err
    } finally {
      span.end()
    }
  })
  deps.metrics.refreshRotations.inc({ outcome: outcome.status })
  const log = { client_id: client.client.id, ip: request.ip }

  switch (outcome.status) {
    case 'rotated':
    case 'retried':
      break
    case 'reused': {
      const f = outcome.family
      deps.metrics.reuseDetected.inc()
      audit(
        request.log,
        deps.audit,
        { event: 'refresh_token.reuse_detected', family_id: f.id, client_id: f.clientId, sub: f.userId, ip: request.ip, generation: f.generation },
        'refresh token reuse detected: family revoked',
        'warn',
      )
      // The rotate script revoked the family and announced it in the same step.
      await announceRevoked(deps, request.log, [f], 'reuse')
      throw new InvalidGrant('the refresh token is invalid, expired or revoked', { detail: 'reuse' })
    }
    case 'key_mismatch':
      // Nothing was spent: the holder of the key can still rotate this token.
      request.log.info({ ...log, event: 'refresh_token.rejected', reason: 'key_mismatch', family_id: outcome.family.id }, 'refresh token rejected')
      if (dpop === undefined) throw proofRefused(request, deps, new InvalidDpopProof('the refresh token is bound to a DPoP key: send a proof of it', { detail: 'no proof' }), client.client.id)
      throw new InvalidGrant('the refresh token is bound to another DPoP key', { detail: 'key_mismatch' })
    default:
      request.log.info({ ...log, event: 'refresh_token.rejected', reason: outcome.status }, 'refresh token rejected')
      throw new InvalidGrant('the refresh token is invalid, expired or revoked', { detail: outcome.status })
  }

  const { family, refreshToken } = outcome
  const user = await deps.users.findById(family.userId)
  if (!user || user.disabled) {
    await revokeFamily(deps, request.log, family.id, 'user_disabled')
    throw new InvalidGrant('the refresh token is invalid, expired or revoked', { detail: 'user gone or disabled' })
  }
  // A client that requires a second factor (require_mfa, perhaps set after this family began):
  // a family from a sign-in without one is done, as its code would be refused now.
  if (!signInMeets(family.amr ?? AMR_PASSWORD, mandatoryAcr(client.client))) {
    await revokeFamily(deps, request.log, family.id, 'admin')
    throw new InvalidGrant('the refresh token is invalid, expired or revoked', { detail: 'the sign-in does not meet require_mfa' })
  }
  // RFC 6749 §6: a narrower scope may be asked for; the family keeps its own. Checked against the
  // same family above (lookup); again here for a token the lookup did not find.
  checkNarrowing(family, asked, wanted, client.client)
  const audience = tokenAudience(wanted, grantedResources(family.resources, client.client), client.client)
  if (audience === undefined) {
    // The client is no longer allowed any resource this family was granted: it can never be refreshed again.
    await revokeFamily(deps, request.log, family.id, 'admin')
    throw new InvalidGrant('the refresh token is invalid, expired or revoked', { detail: 'no granted resource is allowed for the client any more' })
  }
  // RFC 6749 §5.1: the response's scope is the access token's, its part for the audience.
  const scope = scopeForAudience(asked?.join(' ') ?? family.scope, audience, client.client, deps.resources.list())
  const at = await deps.tokens.issue({
    sub: user.id,
    clientId: client.client.id,
    audience,
    scope,
    ...(client.client.releaseRoles ? { roles: user.roles } : {}),
    sid: family.id,
    authTime: family.authTime,
    jkt: dpop?.jkt,
    // RFC 9068 §2.2.1: kept from the authorization that asked for it.
    ...(family.acrInAccessTokens === true && family.amr !== undefined ? { acr: acrOf(family.amr) } : {}),
  })
  deps.metrics.tokensIssued.inc({ grant_type: 'refresh_token' })
  request.log.info(
    { event: 'refresh_token.rotated', family_id: family.id, client_id: family.clientId, sub: user.id, generation: family.generation, retried: outcome.status === 'retried', aud: audience },
    'refresh token rotated',
  )
  const res: TokenResponse = { access_token: at.token, token_type: tokenType(dpop), expires_in: at.expiresIn, scope, refresh_token: refreshToken }
  // OIDC Core §12.2: with openid, a new ID token about the same authentication: the original
  // auth_time, amr and acr, the login session's sid; no nonce (it belongs to the first one).
  if (splitScope(scope).includes('openid')) {
    res.id_token = await signIdToken(
      { issuer: deps.config.issuer, keys: deps.keys, ttlSeconds: deps.tokens.ttl, clock: deps.clock },
      { sub: user.id, clientId: client.client.id, authTime: family.authTime, accessToken: at.token, sid: family.sessionId, amr: family.amr },
    )
  }
  return res
}
