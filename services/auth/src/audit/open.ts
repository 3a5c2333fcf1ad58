import type { AuthConfig } from '../config.js'
import { createPool } from '../database/pool.js'
import type { AuthMetrics } from '../runtime/metrics.js'
import type { Clock } from '../store/types.js'
import { PostgresAuditTrail } from './postgres-trail.js'
import { MemoryAuditTrail, type AuditTrail } from './trail.js'

/** Connections of the trail's own pool: its batches never wait behind requests' queries, nor they behind it. */
const AUDIT_POOL_SIZE = 2

/**
 * The audit trail a configuration calls for (server and CLI alike): PostgreSQL with DATABASE_URL,
 * else the memory ring of the embedded default. The PostgreSQL trail has a small pool of its own.
 */
export function openAuditTrail(
  config: AuthConfig,
  log: { warn(obj: Record<string, unknown>, msg?: string): void; info(obj: Record<string, unknown>, msg?: string): void },
  clock: Clock,
  metrics?: AuthMetrics,
): AuditTrail {
  const count = metrics ? (outcome: 'written' | 'dropped', n: number) => metrics.auditEvents.inc({ outcome }, n) : undefined
  const { retentionDays, bufferSize } = config.audit
  if (!config.database) return new MemoryAuditTrail({ clock, retentionDays, capacity: bufferSize, ...(count ? { count } : {}) })
  const pool = createPool({ ...config.database, poolSize: AUDIT_POOL_SIZE }, (err) => log.warn({ event: 'audit.connection_lost', err: err.message }, 'an idle audit-trail connection to PostgreSQL broke'))
  return new PostgresAuditTrail({ db: pool, clock, log, retentionDays, bufferSize, end: () => pool.end(), ...(count ? { count } : {}) })
}
