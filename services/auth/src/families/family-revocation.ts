import type { FastifyBaseLogger } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'
import type { Family, RevokeReason } from './types.js'
import { audit } from '../audit/trail.js'

/**
 * The audit event of families just revoked. Telling resource services (DESIGN §6; the family id
 * is the access tokens' `sid`) is NOT done here: the family store records and publishes the
 * revocation in the same step that revokes (issue 20), so it cannot be lost between two calls.
 * Their access tokens die within one access-token lifetime anyway, which bounds the entry.
 */
export async function announceRevoked(deps: AuthDeps, log: FastifyBaseLogger, families: readonly Family[], reason: RevokeReason): Promise<void> {
  for (const f of families) {
    audit(log, deps.audit, { event: 'family.revoked', family_id: f.id, client_id: f.clientId, sub: f.userId, reason }, 'family revoked')
  }
}

/**
 * Revokes one family, announced in the same store step, and writes the audit event; false when
 * it was not live. A family already revoked is announced again (so a later /revoke or an admin
 * revoke repairs an announcement a resource service missed). A Redis failure throws
 * StoreUnavailable (503 temporarily_unavailable).
 */
export async function revokeFamily(deps: AuthDeps, log: FastifyBaseLogger, familyId: string, reason: RevokeReason): Promise<boolean> {
  const family = await deps.families.revoke(familyId, reason)
  if (family === null) return false
  await announceRevoked(deps, log, [family], reason)
  return true
}
