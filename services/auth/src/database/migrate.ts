import { readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { runner } from 'node-pg-migrate'
import pg from 'pg'
import { pgCall, redactUrls } from './pg-call.js'
import type { Pool } from './pool.js'

/** services/auth/migrations, from src/database or dist/database alike. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url))

/** The table node-pg-migrate records applied migrations in. */
export const MIGRATIONS_TABLE = 'gatehouse_migrations'

export interface MigrateOptions {
  /** Report only: list what would be applied, change nothing. */
  dryRun?: boolean
  /** How long to wait for another process's migration to finish (default 60 s). */
  lockWaitMs?: number
  /** Progress lines (never the URL). */
  log?: (line: string) => void
}

/**
 * Applies the pending migrations of services/auth/migrations (node-pg-migrate, SQL files, each in
 * its transaction order, all in one transaction) and returns their names. Replicas started
 * together with DATABASE_MIGRATE=1 serialize on node-pg-migrate's advisory lock: the others wait
 * for the first and then find nothing left to apply.
 */
export async function migrateDatabase(url: string, opts: MigrateOptions = {}): Promise<string[]> {
  const deadline = Date.now() + (opts.lockWaitMs ?? 60_000)
  const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    // Our own client, ended (and awaited) by us: node-pg-migrate's own end() is not awaited, and a
    // connection still closing when the server goes away must not become an unhandled 'error'.
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
    client.on('error', () => undefined)
    try {
      await client.connect()
      const applied = await runner({
        dbClient: client,
        dir: MIGRATIONS_DIR,
        migrationsTable: MIGRATIONS_TABLE,
        direction: 'up',
        checkOrder: true,
        singleTransaction: true,
        dryRun: opts.dryRun ?? false,
        logger: quiet,
      })
      const names = applied.map((m) => m.name)
      for (const n of names) opts.log?.(`${opts.dryRun ? 'pending' : 'applied'} ${n}`)
      return names
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      if (!/Another migration is already running/.test(message) || Date.now() > deadline) throw new MigrationError(message, { cause: err })
      await new Promise((resolve) => setTimeout(resolve, wait))
    } finally {
      await client.end().catch(() => undefined)
    }
  }
}

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`migration failed: ${redactUrls(message)}`, options)
    this.name = 'MigrationError'
  }
}

/**
 * The migrations shipped with this version that the database has not applied (node-pg-migrate's
 * record, compared with the files): the service refuses to start on an older schema unless
 * DATABASE_MIGRATE=1. Throws StoreUnavailable when the database does not answer.
 */
export async function pendingMigrations(pool: Pool): Promise<string[]> {
  const shipped = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -'.sql'.length)).sort()
  const applied = await pgCall('migrations.check', async () => {
    try {
      return (await pool.query<{ name: string }>(`SELECT name FROM ${MIGRATIONS_TABLE}`)).rows.map((r) => r.name)
    } catch (err) {
      if ((err as { code?: unknown }).code === '42P01') return [] // undefined_table: nothing applied yet
      throw err
    }
  })
  const done = new Set(applied)
  return shipped.filter((n) => !done.has(n))
}
