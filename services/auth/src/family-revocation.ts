import type { FastifyBaseLogger } from 'fastify'
import type { AuthDeps } from './deps.js'
import type { Family, RevokeReason } from './store/types.js'

/**
 * After families are revoked: tell resource services (DESIGN §6; the family id is the access
 * tokens' `sid`) and write the audit event. Their access tokens die within one access-token
 * lifetime anyway, which bounds the deny-list entry.
 */
export async function announceRevoked(deps: AuthDeps, log: FastifyBaseLogger, families: readonly Family[], reason: RevokeReason): Promise<void> {
  const exp = Math.floor(deps.clock() / 1000) + deps.tokens.ttl
  for (const f of families) {
    log.info({ event: 'family.revoked', family_id: f.id, client_id: f.clientId, sub: f.userId, reason }, 'family revoked')
    await deps.revocations.publish(f.id, exp)
  }
}

/** Revokes one family and announces it; false when it was not live. */
export async function revokeFamily(deps: AuthDeps, log: FastifyBaseLogger, familyId: string, reason: RevokeReason): Promise<boolean> {
  const family = await deps.families.revoke(familyId, reason)
  if (family === null) return false
  await announceRevoked(deps, log, [family], reason)
  return true
}
