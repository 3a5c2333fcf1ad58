import { InvalidDpopProof, InvalidGrant, InvalidScope } from '@gatehouse/service-kit'
import { announceRevoked, revokeFamily } from '../families/family-revocation.js'
import { required } from '../http/form.js'
import { splitScope } from '../tokens/scope.js'
import { audit } from '../audit/trail.js'
import type { GrantHandler } from './types.js'
import { proofRefused, tokenType } from '../dpop/proofs.js'

/** RFC 6749 §6 with rotation and reuse detection (DESIGN §5). */
export const refreshTokenGrant: GrantHandler = async ({ request, params, client, deps, dpop }) => {
  const presented = required(params, 'refresh_token')
  // Every check before the rotation: a refused request must spend nothing (issue 12, finding 4).
  // Only a request that narrows the scope pays a lookup; a family's scope never changes.
  let asked: string[] | undefined
  if (params.scope !== undefined) {
    asked = [...new Set(splitScope(params.scope))]
    if (asked.length === 0) throw new InvalidScope('the scope exceeds what was granted')
    const found = await deps.families.lookup(presented)
    const granted = found === null ? null : splitScope(found.family.scope)
    if (granted !== null && asked.some((s) => !granted.includes(s))) throw new InvalidScope('the scope exceeds what was granted')
  }
  // A family bound to a DPoP key (RFC 9449 §5) is checked against the proof inside the rotation.
  const outcome = await deps.families.rotate(presented, { clientId: client.client.id, ...(dpop === undefined ? {} : { jkt: dpop.jkt }) })
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
  // RFC 6749 §6: a narrower scope may be asked for; the family keeps its own.
  let scope = family.scope
  if (asked !== undefined) {
    // Checked against the same family above (lookup); kept here for a token the lookup did not find.
    const granted = splitScope(family.scope)
    if (asked.some((s) => !granted.includes(s))) throw new InvalidScope('the scope exceeds what was granted')
    scope = asked.join(' ')
  }
  const at = await deps.tokens.issue({
    sub: user.id,
    clientId: client.client.id,
    audience: client.client.audience,
    scope,
    ...(client.client.releaseRoles ? { roles: user.roles } : {}),
    sid: family.id,
    authTime: family.authTime,
    jkt: dpop?.jkt,
  })
  deps.metrics.tokensIssued.inc({ grant_type: 'refresh_token' })
  request.log.info(
    { event: 'refresh_token.rotated', family_id: family.id, client_id: family.clientId, sub: user.id, generation: family.generation, retried: outcome.status === 'retried' },
    'refresh token rotated',
  )
  return { access_token: at.token, token_type: tokenType(dpop), expires_in: at.expiresIn, scope, refresh_token: refreshToken }
}
