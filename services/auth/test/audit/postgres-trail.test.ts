/**
 * The audit trail in a private PostgreSQL (audit/postgres-trail.ts): the shared contract, then
 * what only the database version does: one INSERT per batch, a bounded buffer that drops and
 * counts, recovery after the database comes back without a restart, the retention's bounded
 * DELETEs, and an append-only table.
 */
import t from 'tap'
import { auditTrailContract } from './audit-trail-contract.js'
import { auditDatabases, counting, trailOn } from './pg-fixture.js'
import { ManualClock } from '@gatehouse/test-harness'

const FLUSH_MS = 1000

t.test('PostgreSQL audit trail', async (t) => {
  const dbs = await auditDatabases(t)

  t.test('contract', async (t) => {
    auditTrailContract(t, async (t, { retentionDays }) => {
      const clock = new ManualClock()
      const { trail } = trailOn(await dbs.fresh(t), clock, { retentionDays })
      t.teardown(() => trail.close())
      return { trail, clock }
    })
  })

  t.test('events are written in batches: one INSERT per batch, at the interval or when a batch is full', async (t) => {
    const pool = await dbs.fresh(t)
    const db = counting(pool)
    const clock = new ManualClock()
    const { trail, timers, counted } = trailOn(db, clock, { batchSize: 10, bufferSize: 100 })
    t.teardown(() => trail.close())

    for (let i = 0; i < 7; i++) trail.record({ event: 'login.failed', n: i })
    t.same(db.statements, [], 'nothing is written before the interval or a full batch')
    t.equal(trail.buffered, 7)
    timers.tick(FLUSH_MS)
    await trail.flush()
    t.same(db.statements, ['INSERT'], 'the interval wrote the 7 events in one statement')
    t.equal((await pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n, 7)

    db.statements.length = 0
    for (let i = 0; i < 25; i++) trail.record({ event: 'login.failed', n: i })
    // The 10th event started a write at once; the rest follow in batches of 10.
    await trail.flush()
    t.same(db.statements, ['INSERT', 'INSERT', 'INSERT'], '25 events: three statements of at most 10 rows')
    t.equal((await pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n, 32)
    t.same(counted, { written: 32, dropped: 0 }, 'counted as written')
  })

  t.test('a full buffer drops and counts, with one throttled warning', async (t) => {
    const pool = await dbs.fresh(t)
    const clock = new ManualClock()
    const { trail, counted, warnings } = trailOn(pool, clock, { batchSize: 1000, bufferSize: 5 })
    t.teardown(() => trail.close())
    for (let i = 0; i < 8; i++) trail.record({ event: 'login.failed', n: i })
    t.same(counted, { written: 0, dropped: 3 })
    t.equal(warnings.filter((w) => w.event === 'audit.dropped').length, 1, 'one warning, not one per event')
    t.match(warnings[0], { event: 'audit.dropped', dropped: 1, reason: 'buffer_full' })
    clock.advanceSeconds(61)
    trail.record({ event: 'login.failed', n: 'late' })
    t.match(warnings.filter((w) => w.event === 'audit.dropped')[1], { dropped: 3 }, 'the next warning, a minute later, counts what was dropped since')
    await trail.flush()
    t.equal((await pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n, 5, 'the first five were kept')
  })

  t.test('PostgreSQL killed: events dropped and counted, never thrown; after restart writing resumes by itself', async (t) => {
    const { startPostgres } = await import('@gatehouse/test-harness')
    const { migrateDatabase } = await import('../../src/database/migrate.js')
    const pg = (await import('pg')).default
    const server = await startPostgres()
    t.teardown(() => server.stop())
    const url = await server.createDatabase()
    await migrateDatabase(url)
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 1000, query_timeout: 2000 })
    pool.on('error', () => undefined)
    t.teardown(() => pool.end().catch(() => undefined))
    const clock = new ManualClock()
    const { trail, timers, counted, warnings, infos } = trailOn(pool, clock, { batchSize: 100, bufferSize: 1000 })
    t.teardown(() => trail.close())

    trail.record({ event: 'login.succeeded', sub: 'u_before', client_id: 'web' })
    await trail.flush()
    t.equal(counted.written, 1)

    await server.kill()
    for (let i = 0; i < 5; i++) t.doesNotThrow(() => trail.record({ event: 'login.failed', n: i }))
    timers.tick(FLUSH_MS)
    await trail.flush()
    t.same(counted, { written: 1, dropped: 5 }, 'the failed batch is dropped and counted')
    t.equal(trail.buffered, 0)
    t.ok(warnings.some((w) => w.event === 'audit.write_failed'), 'a warning says why')

    await server.restart()
    trail.record({ event: 'login.succeeded', sub: 'u_after', client_id: 'web' })
    // The pool's broken connections fail once; the next interval writes.
    for (let i = 0; i < 20 && counted.written < 2; i++) {
      timers.tick(FLUSH_MS)
      await trail.flush()
      if (counted.written < 2 && trail.buffered === 0) trail.record({ event: 'login.succeeded', sub: 'u_after', client_id: 'web' })
    }
    t.equal(counted.written, 2, 'written again without restarting anything')
    t.ok(infos.some((i) => i.event === 'audit.write_resumed'))
    const { events } = await trail.search({ limit: 10, userId: 'u_after' })
    t.ok(events.length >= 1)
  })

  t.test('retention: bounded batches, only old rows, safe with several replicas at once', async (t) => {
    const pool = await dbs.fresh(t)
    const db = counting(pool)
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const now = clock.ms
    await pool.query(
      `INSERT INTO audit_events (time, event, outcome, details)
       SELECT to_timestamp(($1::float8 - (g::float8 * 3600000)) / 1000), 'login.failed', 'failure', jsonb_build_object('g', g) FROM generate_series(1, 2400) g`,
      [now],
    )
    // 2400 hourly events: 100 days back. With 30 days' retention 1680 are older than the cutoff.
    const a = trailOn(db, clock, { retentionDays: 30, pruneBatch: 100, pruneMaxBatches: 1000 })
    const b = trailOn(pool, clock, { retentionDays: 30, pruneBatch: 100, pruneMaxBatches: 1000 })
    t.teardown(() => Promise.all([a.trail.close(), b.trail.close()]))
    const [da, dbCount] = await Promise.all([a.trail.prune(), b.trail.prune()])
    t.equal(da + dbCount, 1680, 'every old row deleted once, by one replica or the other')
    t.ok(db.statements.every((s) => s === 'DELETE'), 'only DELETEs')
    t.ok(db.statements.length >= 2, 'in several bounded statements')
    const left = (await pool.query('SELECT count(*)::int AS n, min(time) AS oldest FROM audit_events')).rows[0]
    t.equal(left.n, 720, 'the last 30 days stay')
    t.ok(new Date(left.oldest).getTime() >= now - 30 * 86_400_000)

    const limited = trailOn(pool, new ManualClock(now + 10 * 86_400_000), { retentionDays: 30, pruneBatch: 50, pruneMaxBatches: 2 })
    t.teardown(() => limited.trail.close())
    t.equal(await limited.trail.prune(), 100, 'one run deletes at most pruneMaxBatches × pruneBatch rows (the next run continues)')
  })

  t.test('the retention runs by itself at its interval', async (t) => {
    const pool = await dbs.fresh(t)
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const { trail, timers } = trailOn(pool, clock, { retentionDays: 1, pruneIntervalMs: 3_600_000 })
    t.teardown(() => trail.close())
    clock.ms -= 2 * 86_400_000
    trail.record({ event: 'login.failed', n: 'old' })
    clock.ms += 2 * 86_400_000
    trail.record({ event: 'login.failed', n: 'new' })
    await trail.flush()
    timers.tick(3_600_000)
    for (let i = 0; i < 100; i++) {
      if ((await pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n === 1) break
      await new Promise((r) => setTimeout(r, 20))
    }
    t.same((await trail.search({ limit: 5 })).events.map((e) => e.details.n), ['new'])
  })

  t.test('append-only: an UPDATE is refused', async (t) => {
    const pool = await dbs.fresh(t)
    const { trail } = trailOn(pool, new ManualClock())
    t.teardown(() => trail.close())
    trail.record({ event: 'admin.user_added', actor: 'ops', user_id: 'u_x' })
    await trail.flush()
    await t.rejects(pool.query("UPDATE audit_events SET actor_id = 'someone-else'"), /append-only/)
  })

  t.test('close writes what is buffered, within its bound', async (t) => {
    const pool = await dbs.fresh(t)
    const { trail, counted } = trailOn(pool, new ManualClock(), { batchSize: 1000 })
    for (let i = 0; i < 3; i++) trail.record({ event: 'login.failed', n: i })
    await trail.close()
    t.same(counted, { written: 3, dropped: 0 })
    t.equal((await pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n, 3)
  })
})
