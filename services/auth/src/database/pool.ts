import pg from 'pg'
import type { DatabaseSettings } from '../config.js'

export type Pool = pg.Pool

/**
 * The process's PostgreSQL pool (DESIGN §10.2): bounded in connections (DATABASE_POOL_SIZE), in
 * the wait for one (DATABASE_CONNECT_TIMEOUT) and in every statement, on the server
 * (`statement_timeout`) and in the driver (`query_timeout`, a little later, for a server that no
 * longer answers at all). So a request that needs the database answers 503 within a bound when
 * PostgreSQL is down or stalled (database/pg-call.ts), never hangs.
 */
export function createPool(settings: DatabaseSettings, onIdleError: (err: Error) => void): Pool {
  const pool = new pg.Pool({
    connectionString: settings.url,
    max: settings.poolSize,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: settings.statementTimeoutMs,
    query_timeout: settings.statementTimeoutMs + 1000,
    application_name: 'gatehouse-auth',
    keepAlive: true,
  })
  // An idle connection that breaks (a server restart) is an event, not a crash of the process.
  pool.on('error', onIdleError)
  return pool
}
