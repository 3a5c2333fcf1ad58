import type { Test } from 'tap'
import pg from 'pg'
import { startPostgres, type PostgresServer } from '@gatehouse/test-harness'
import { migrateDatabase } from '../../src/database/migrate.js'
import { PostgresAuditTrail, type PostgresAuditTrailOptions, type Queryable } from '../../src/audit/postgres-trail.js'
import { ManualClock } from '@gatehouse/test-harness'

/** A private PostgreSQL with a migrated template; each test gets its own database from it. */
export async function auditDatabases(t: Test): Promise<{ server: PostgresServer; fresh(t: Test): Promise<pg.Pool> }> {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  await migrateDatabase(await server.createDatabase('audit_template'))
  return {
    server,
    async fresh(t) {
      const pool = new pg.Pool({ connectionString: await server.createDatabase(undefined, { template: 'audit_template' }), max: 2, connectionTimeoutMillis: 2000, query_timeout: 3000 })
      pool.on('error', () => undefined)
      t.teardown(() => pool.end().catch(() => undefined))
      return pool
    },
  }
}

/** A pool that counts the statements it runs (by their first word). */
export function counting(db: Queryable): Queryable & { statements: string[] } {
  const statements: string[] = []
  return {
    statements,
    query: (text, values) => {
      statements.push(text.trim().split(/\s+/)[0]!.toUpperCase())
      return db.query(text, values)
    },
  }
}

/** Timers the test fires by hand: `tick()` runs every registered `every` callback once. */
export class ManualTimers {
  readonly fns: { fn: () => void; ms: number }[] = []
  every = (fn: () => void, ms: number): (() => void) => {
    const entry = { fn, ms }
    this.fns.push(entry)
    return () => this.fns.splice(this.fns.indexOf(entry), 1)
  }
  /** Runs the callbacks registered with this interval. */
  tick(ms: number): void {
    for (const e of [...this.fns]) if (e.ms === ms) e.fn()
  }
}

export function trailOn(db: Queryable, clock: ManualClock, opts: Partial<PostgresAuditTrailOptions> = {}) {
  const timers = new ManualTimers()
  const warnings: Record<string, unknown>[] = []
  const infos: Record<string, unknown>[] = []
  const counted = { written: 0, dropped: 0 }
  const trail = new PostgresAuditTrail({
    db,
    clock: clock.now,
    log: { warn: (o) => warnings.push(o), info: (o) => infos.push(o) },
    retentionDays: 90,
    every: timers.every,
    count: (outcome, n) => (counted[outcome] += n),
    ...opts,
  })
  return { trail, timers, warnings, infos, counted }
}
