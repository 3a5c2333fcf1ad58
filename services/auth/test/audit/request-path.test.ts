/**
 * Writing the audit trail never slows or fails a request (issue 13): with the trail's PostgreSQL
 * frozen (SIGSTOP) or killed, requests through the app answer as before, and each event is
 * counted, written later or dropped; after a restart the trail writes again by itself.
 */
import t from 'tap'
import { startPostgres } from '@gatehouse/test-harness'
import { migrateDatabase } from '../../src/database/migrate.js'
import { makeApp, passwordLogin } from '../helpers.js'

t.test('a paused or killed database never delays nor fails a request', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const url = await pg.createDatabase()
  await migrateDatabase(url)
  // The trail's statements give up after 3 s (+1 s in the driver): far longer than a login takes.
  const h = await makeApp({ DATABASE_URL: url, DATABASE_STATEMENT_TIMEOUT: '3000', DATABASE_CONNECT_TIMEOUT: '1000', LOGIN_DELAY_MS: '0' })
  t.teardown(h.close)
  const trail = h.deps.audit
  t.equal(trail.durable, true, 'DATABASE_URL: the trail is in PostgreSQL')

  t.equal((await passwordLogin(h.app)).statusCode, 200)
  await trail.flush()
  t.same(trail.stats, { written: 1, dropped: 0 })

  // Frozen: the server and its open connections' backends (SIGSTOP); nothing answers at all.
  pg.pause()
  t.teardown(() => pg.resume())
  t.equal((await passwordLogin(h.app, 'alice', 'wrong-password')).statusCode, 400)
  // A write is now waiting for the frozen server ...
  let settled = false
  const inflight = trail.flush().then(() => (settled = true))
  // ... and requests that record events answer regardless.
  const during = await passwordLogin(h.app)
  t.equal(during.statusCode, 200, 'a login answers while the database is frozen')
  t.equal((await passwordLogin(h.app, 'alice', 'wrong-again')).statusCode, 400)
  t.notOk(settled, 'the answers came while the write was still waiting')
  pg.resume()
  await inflight
  await trail.flush()
  t.equal(trail.stats.written + trail.stats.dropped, 4, 'every event counted: written once the server answered, or dropped')
  const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body
  const count = (o: string) => Number(new RegExp(`gatehouse_audit_events_total\\{outcome="${o}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0)
  t.equal(count('written') + count('dropped'), 4, 'and in gatehouse_audit_events_total')

  await pg.kill()
  const dropped = trail.stats.dropped
  t.equal((await passwordLogin(h.app)).statusCode, 200, 'a login answers with the database gone')
  await trail.flush()
  t.equal(trail.stats.dropped, dropped + 1, 'its event is dropped and counted')

  await pg.restart()
  const written = trail.stats.written
  for (let i = 0; i < 10 && trail.stats.written === written; i++) {
    t.equal((await passwordLogin(h.app)).statusCode, 200)
    await trail.flush()
  }
  t.ok(trail.stats.written > written, 'written again after the restart, without restarting the service')
  t.ok((await trail.search({ limit: 5, events: ['login.succeeded'] })).events.length >= 2)
})
