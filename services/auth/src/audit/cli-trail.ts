import type { AuthConfig } from '../config.js'
import type { Clock } from '../store/types.js'
import { openAuditTrail } from './open.js'
import { MemoryAuditTrail, type AuditTrail } from './trail.js'

/** The `gatehouse` command's trail: opened on first use, flushed (within a bound) before it exits. */
export interface CliAuditTrail {
  open(): Promise<AuditTrail>
  /** Flushes; says on standard error how many events could not be written, if any. */
  close(): Promise<void>
}

export interface CliTrailHost {
  config(): Promise<AuthConfig>
  readonly clock: Clock
  readonly audit: { info(obj: Record<string, unknown>, msg?: string): void }
  readonly io: { stderr: { write(s: string): unknown } }
}

/**
 * Admin actions go to the trail in PostgreSQL with DATABASE_URL; without it (or when no
 * configuration loads, as for `keys generate` somewhere without one) the audit lines on standard
 * error are the only record, and the trail is a memory one that ends with the command.
 */
export function cliAuditTrail(host: CliTrailHost): CliAuditTrail {
  let opened: Promise<AuditTrail> | undefined
  const log = { info: (obj: Record<string, unknown>, msg?: string) => host.audit.info(obj, msg), warn: (obj: Record<string, unknown>, msg?: string) => host.audit.info(obj, msg) }
  return {
    open() {
      opened ??= host.config().then(
        (config) => openAuditTrail(config, log, host.clock),
        () => new MemoryAuditTrail({ clock: host.clock, retentionDays: 0, capacity: 100 }),
      )
      return opened
    },
    async close() {
      if (!opened) return
      const trail = await opened
      await trail.close()
      if (trail.durable && trail.stats.dropped > 0) {
        host.io.stderr.write(`gatehouse: warning: ${trail.stats.dropped} audit event(s) could not be written to the audit trail in PostgreSQL (the audit lines above are their only record)\n`)
      }
    },
  }
}
