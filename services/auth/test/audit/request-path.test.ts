/**
 * Writing the audit trail never slows or fails a request (issue 13): with the trail's PostgreSQL
 * frozen (SIGSTOP) or killed, requests that do not need the database (a client_credentials request
 * answered from the replica's directory cache, Redis for the rest) answer as before, including
 * those that record an event (a failed client authentication), and each event is counted, written
 * later or dropped; after a restart the trail writes again by itself.
 */
import t from 'tap'
import { startPostgres } from '@gatehouse/test-harness'
import { migrateDatabase } from '../../src/database/migrate.js'
import { basic, makeApp, privateRedis, token } from '../helpers.js'

const CC = { grant_type: 'client_credentials' }
const good = basic('reporting-service', 'reporting-secret')
const bad = basic('reporting-service', 'not-the-secret')

t.test('a paused or killed database never delays nor fails a request that does not need it', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const url = await pg.createDatabase()
  await migrateDatabase(url)
  const { server: redis } = await privateRedis(t)
  // The trail's statements give up after 10 s (+1 s in the driver): far longer than a request takes.
  const h = await makeApp({ DATABASE_URL: url, REDIS_URL: redis.url, DATABASE_STATEMENT_TIMEOUT: '10000', DATABASE_CONNECT_TIMEOUT: '1000' })
  t.teardown(h.close)
  const trail = h.deps.audit
  t.equal(trail.durable, true, 'DATABASE_URL: the trail is in PostgreSQL')

  // The client is read once from PostgreSQL, then served from the replica's copy.
  t.equal((await token(h.app, CC, good)).statusCode, 200)
  t.equal((await token(h.app, CC, bad)).statusCode, 401)
  await trail.flush()
  t.same(trail.stats, { written: 1, dropped: 0 }, 'the failed authentication is recorded')

  // Frozen: the server and its open connections' backends (SIGSTOP); nothing answers at all.
  pg.pause()
  t.teardown(() => pg.resume())
  t.equal((await token(h.app, CC, bad)).statusCode, 401)
  // A write is now waiting for the frozen server ...
  let settled = false
  const inflight = trail.flush().then(() => (settled = true))
  // ... and requests that record events answer regardless.
  t.equal((await token(h.app, CC, good)).statusCode, 200, 'a request answers while the database is frozen')
  t.equal((await token(h.app, CC, bad)).statusCode, 401, 'and one that records an event')
  t.notOk(settled, 'the answers came while the write was still waiting')
  pg.resume()
  await inflight
  await trail.flush()
  t.equal(trail.stats.written + trail.stats.dropped, 3, 'every event counted: written once the server answered, or dropped')
  const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body
  const count = (o: string) => Number(new RegExp(`gatehouse_audit_events_total\\{outcome="${o}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0)
  t.equal(count('written') + count('dropped'), 3, 'and in gatehouse_audit_events_total')

  await pg.kill()
  const dropped = trail.stats.dropped
  t.equal((await token(h.app, CC, bad)).statusCode, 401, 'a request answers with the database gone')
  await trail.flush()
  t.equal(trail.stats.dropped, dropped + 1, 'its event is dropped and counted')

  await pg.restart()
  const written = trail.stats.written
  for (let i = 0; i < 10 && trail.stats.written === written; i++) {
    t.equal((await token(h.app, CC, bad)).statusCode, 401)
    await trail.flush()
  }
  t.ok(trail.stats.written > written, 'written again after the restart, without restarting the service')
  t.ok((await trail.search({ limit: 5, events: ['client.auth_failed'] })).events.length >= 2)
})
