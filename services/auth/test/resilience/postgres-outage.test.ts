/**
 * The auth service when PostgreSQL (DATABASE_URL, DESIGN §10.2) goes away and comes back, with
 * Redis up (families, sessions, the per-replica directory cache):
 *  - killed (SIGKILL) during a stream of password and client_credentials requests: no 500 ever;
 *    password grants (a user looked up by name) answer 503 temporarily_unavailable while it is
 *    away; client_credentials keep working from the replica's directory cache; every user whose
 *    creation was acknowledged is still there; everything recovers without a restart of the
 *    service; /readyz says `database: unavailable` meanwhile;
 *  - frozen (SIGSTOP, a hung host): requests that need it end with 503 within the statement and
 *    connect timeouts instead of hanging.
 * The service's clock is a ManualClock that stands still, so cached copies do not expire on their own.
 */
import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { startPostgres, startRedis, type PostgresServer } from '@gatehouse/test-harness'
import { buildApp } from '../../src/app.js'
import { createRuntime, type Runtime } from '../../src/runtime/bootstrap.js'
import { loadConfig } from '../../src/config.js'
import { ManualClock } from '@gatehouse/test-harness'
import { basic, form, LogCapture } from '../helpers.js'

const STATEMENT_TIMEOUT_MS = 1000
const CONNECT_TIMEOUT_MS = 1000
/** The driver gives up a statement 1 s after the server should have (database/pool.ts), plus a connect. */
const REQUEST_BOUND_MS = STATEMENT_TIMEOUT_MS + 1000 + CONNECT_TIMEOUT_MS + 1500
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

interface Harness {
  app: FastifyInstance
  runtime: Runtime
  pg: PostgresServer
  db: string
  logs: LogCapture
}

const redis = await startRedis()
t.teardown(() => redis.stop())

async function start(t: Test): Promise<Harness> {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const url = await pg.createDatabase()
  const clock = new ManualClock()
  const config = await loadConfig({
    LOG_LEVEL: 'info',
    REDIS_URL: redis.url,
    COOKIE_SECRET: 'outage-test-cookie-secret-0123456789abcdef',
    DATABASE_URL: url,
    DATABASE_MIGRATE: '1',
    DATABASE_STATEMENT_TIMEOUT: String(STATEMENT_TIMEOUT_MS),
    DATABASE_CONNECT_TIMEOUT: String(CONNECT_TIMEOUT_MS),
  })
  const runtime = await createRuntime(config, { warn() {}, info() {} }, clock.now)
  const logs = new LogCapture()
  const app = await buildApp(runtime.deps, { logStream: logs })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    await runtime.close()
  })
  const h = { app, runtime, pg, db: new URL(url).pathname.slice(1), logs }
  await waitReady(h)
  return h
}

async function waitReady(h: Harness, timeoutMs = 20_000): Promise<number> {
  const started = Date.now()
  while ((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
    if (Date.now() - started > timeoutMs) throw new Error('the auth app never became ready')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return Date.now() - started
}

const password = (app: FastifyInstance, username = 'alice', pw = 'alice-password') =>
  app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username, password: pw }) })
const clientCredentials = (app: FastifyInstance) =>
  app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('reporting-service', 'reporting-secret') }, payload: form({ grant_type: 'client_credentials' }) })

function assertUnavailable(t: Test, what: string, res: LightMyRequestResponse): void {
  t.equal(res.statusCode, 503, `${what}: 503`)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.json().error, 'temporarily_unavailable', `${what}: RFC 6749 §5.2 temporarily_unavailable`)
}

t.test('killed during a stream of password and client_credentials requests, then restarted', async (t) => {
  const h = await start(t)
  t.equal((await password(h.app)).statusCode, 200, 'the seeded user signs in')
  t.equal((await clientCredentials(h.app)).statusCode, 200, 'the client is now in the replica cache')

  const statuses = { password: new Map<number, number>(), client: new Map<number, number>() }
  const count = (m: Map<number, number>, code: number) => m.set(code, (m.get(code) ?? 0) + 1)
  const created: string[] = []
  let stop = false
  let n = 0
  const passwords = async () => {
    while (!stop) {
      const res = await password(h.app)
      count(statuses.password, res.statusCode)
      if (res.statusCode === 503) t.equal(res.json().error, 'temporarily_unavailable')
    }
  }
  const clients = async () => {
    while (!stop) count(statuses.client, (await clientCredentials(h.app)).statusCode)
  }
  // Users added through the service's own directory all along: each one acknowledged must survive.
  const adds = async () => {
    while (!stop) {
      const username = `stream${n++}`
      try {
        const r = await h.runtime.deps.users.add({ username, passwordHash: 'h' })
        if (r.status === 'created') created.push(r.user.id)
      } catch {
        // StoreUnavailable while the database is away: not acknowledged, so not promised.
      }
    }
  }
  const streams = [passwords(), passwords(), clients(), adds()]
  const until = async (what: () => boolean) => {
    const deadline = Date.now() + 20_000
    while (!what() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await until(() => (statuses.password.get(200) ?? 0) >= 2 && created.length >= 5)
  await h.pg.kill()
  await until(() => (statuses.password.get(503) ?? 0) >= 3)
  const ready = await h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, '/readyz fails while PostgreSQL is away')
  t.match(ready.json(), { status: 'unavailable', checks: { database: 'unavailable', store: 'ok' } })
  const during = statuses.client.get(200) ?? 0
  await until(() => (statuses.client.get(200) ?? 0) >= during + 5)
  await h.pg.restart()
  t.comment(`ready again ${await waitReady(h)} ms after the restart`)
  const okBefore = statuses.password.get(200) ?? 0
  await until(() => (statuses.password.get(200) ?? 0) >= okBefore + 3)
  stop = true
  await Promise.all(streams)

  t.comment(`password: ${JSON.stringify([...statuses.password])}, client_credentials: ${JSON.stringify([...statuses.client])}, users acknowledged: ${created.length}`)
  t.same([...statuses.password.keys()].filter((c) => c !== 200 && c !== 503), [], 'password grants: only 200 or 503, never a 500')
  t.ok((statuses.password.get(503) ?? 0) > 0, 'password grants answered 503 while the database was away')
  t.same([...statuses.client.keys()], [200], 'client_credentials never failed: answered from the replica cache')
  t.ok((statuses.password.get(200) ?? 0) > okBefore, 'password grants recovered without a restart')
  const stored = await h.pg.query('SELECT id FROM users WHERE id = ANY($1)', [created], h.db)
  t.equal(stored.rowCount, created.length, 'no acknowledged user was lost')
  t.equal((await h.app.inject({ method: 'GET', url: '/readyz' })).json().checks.database, 'ok')
  t.notMatch(h.logs.text, /"level":50/, 'no error-level log line (no 500)')
  t.notMatch(h.logs.text, /postgres:\/\/[^"]*@/, 'no connection string in the logs')
})

t.test('frozen (SIGSTOP): 503 within the statement and connect timeouts, then it recovers', async (t) => {
  const h = await start(t)
  t.equal((await password(h.app)).statusCode, 200)
  t.equal((await clientCredentials(h.app)).statusCode, 200)
  h.pg.pause()
  t.teardown(() => h.pg.resume())
  const started = Date.now()
  const [a, b, cc, ready] = await Promise.all([password(h.app), password(h.app, 'bob', 'bob-password'), clientCredentials(h.app), h.app.inject({ method: 'GET', url: '/readyz' })])
  const ms = Date.now() - started
  assertUnavailable(t, 'password grant', a!)
  assertUnavailable(t, 'another password grant', b!)
  t.equal(cc!.statusCode, 200, 'client_credentials from the replica cache')
  t.equal(ready!.statusCode, 503)
  t.equal(ready!.json().checks.database, 'unavailable')
  t.ok(ms < REQUEST_BOUND_MS, `all ended after ${ms} ms (bound ${REQUEST_BOUND_MS} ms)`)
  h.pg.resume()
  await waitReady(h)
  t.equal((await password(h.app)).statusCode, 200, 'recovered without a restart')
})
