/**
 * `gatehouse audit search|prune` (issue 13) on a private Redis and PostgreSQL: admin actions and
 * the service's events in the trail, filters, paging, JSON, retention, and what happens without
 * a database or with one that is down.
 */
import t from 'tap'
import { freePort } from '@gatehouse/test-harness'
import { passwordLogin } from '../helpers.js'
import { cliRunner, liveService, redisAndPostgres } from './harness.js'

const { redis, pg, url, env: ENV } = await redisAndPostgres()
const cli = cliRunner(ENV)

type Row = Record<string, unknown>

t.test('admin actions are in the trail, with the operator; the service\'s events too', async (t) => {
  t.equal((await cli(['users', 'add', 'nina', '--password-stdin'], { stdin: 'nina-password-1\n' })).code, 0)
  const disabled = await cli(['users', 'disable', 'nina'])
  t.equal(disabled.code, 0, disabled.stderr)
  t.equal(disabled.events('admin.user_disabled').length, 1, 'the log line is still written')

  const found = await cli(['audit', 'search', '--event', 'admin.*', '--json'])
  t.equal(found.code, 0, found.stderr)
  const events = found.json().events as Row[]
  t.match(events, [
    { event: 'admin.user_disabled', outcome: 'success', actor: { type: 'operator', id: 'test-operator' }, user_id: /^u_/, details: { username: 'nina' } },
    { event: 'admin.user_added', actor: { type: 'operator', id: 'test-operator' }, details: { username: 'nina' } },
  ])
  t.notMatch(found.stdout, /nina-password-1|argon2/, 'no password, no hash')

  t.equal((await cli(['sessions', 'revoke', '--user', 'nina', '--yes'])).code, 0)
  t.match((await cli(['audit', 'search', '--event', 'admin.sessions_revoked', '--json'])).json(), { events: [{ actor: { type: 'operator', id: 'test-operator' }, details: { username: 'nina' } }] })
  const byName = await cli(['audit', 'search', '--user', 'nina', '--json'])
  t.same((byName.json().events as Row[]).map((e) => e.event), ['admin.sessions_revoked', 'admin.user_disabled', 'admin.user_added'], '--user takes a username too')

  const svc = await liveService(t, ENV)
  t.equal((await passwordLogin(svc.app, 'alice', 'wrong-password')).statusCode, 400)
  await svc.deps.audit.flush()
  const failed = await cli(['audit', 'search', '--event', 'login.failed', '--address', '127.0.0.1', '--since', '1h'])
  t.equal(failed.code, 0, failed.stderr)
  t.match(failed.stdout, /^\d{4}-\d{2}-\d{2}T[\d:.]+Z {2}login\.failed {2}failure {2}client=cli {2}address=127\.0\.0\.1 {2}\{"reason":"bad_credentials"/m)
})

t.test('paging with --limit and --cursor; bad options are usage errors', async (t) => {
  for (const name of ['pa', 'pb', 'pc']) t.equal((await cli(['users', 'add', name, '--password-stdin'], { stdin: 'page-password\n' })).code, 0)
  const first = await cli(['audit', 'search', '--event', 'admin.user_added', '--limit', '2', '--json'])
  const page1 = first.json()
  t.equal((page1.events as Row[]).length, 2)
  t.type(page1.next_cursor, 'string')
  const second = await cli(['audit', 'search', '--event', 'admin.user_added', '--limit', '2', '--cursor', page1.next_cursor as string, '--json'])
  const all = [...(page1.events as Row[]), ...(second.json().events as Row[])]
  t.same(new Set(all.map((e) => e.id)).size, all.length, 'nothing twice')
  t.ok(all.length >= 4, 'the next page continues (pa, pb, pc and nina)')
  const human = await cli(['audit', 'search', '--event', 'admin.user_added', '--limit', '1'])
  t.match(human.stdout, /\(more: --cursor \S+\)/)

  t.equal((await cli(['audit', 'search', '--since', 'yesterday'])).code, 2)
  t.equal((await cli(['audit', 'search', '--limit', '0'])).code, 2)
  const badCursor = await cli(['audit', 'search', '--cursor', 'nope'])
  t.equal(badCursor.code, 2)
  t.match(badCursor.stderr, /invalid --cursor/)
  const future = await cli(['audit', 'search', '--since', '2999-01-01', '--json'])
  t.same(future.json(), { events: [], next_cursor: null })
})

t.test('prune: asks, deletes only what is past AUDIT_RETENTION_DAYS, and is itself audited', async (t) => {
  const db = new URL(url).pathname.slice(1)
  await pg.query("INSERT INTO audit_events (time, event, outcome) VALUES (now() - interval '400 days', 'login.failed', 'failure')", [], db)
  const refused = await cli(['audit', 'prune'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /pass --yes/)
  const pruned = await cli(['audit', 'prune', '--yes', '--json'], { env: { AUDIT_RETENTION_DAYS: '365' } })
  t.equal(pruned.code, 0, pruned.stderr)
  t.match(pruned.json(), { deleted: 1, retention_days: 365 })
  t.match((await cli(['audit', 'search', '--event', 'admin.audit_pruned', '--json'])).json(), { events: [{ details: { deleted: 1 } }] })
  const forever = await cli(['audit', 'prune', '--yes'], { env: { AUDIT_RETENTION_DAYS: '0' } })
  t.match(forever.stdout, /kept forever/)
  t.ok(Number((await pg.query('SELECT count(*) AS n FROM audit_events', [], db)).rows[0].n) > 0, 'recent events stay')
})

t.test('without DATABASE_URL there is nothing durable to search; with one that is down, the CLI says what was not written', async (t) => {
  const none = await cliRunner({ REDIS_URL: redis.url })(['audit', 'search'])
  t.equal(none.code, 1)
  t.match(none.stderr, /DATABASE_URL is not set: .*memory only.*nothing durable to search/)

  // An action that needs no database (users and clients would: they live there too).
  const port = await freePort()
  const out = `${t.testdir({})}/keys.json`
  const down = await cliRunner({ REDIS_URL: redis.url, DATABASE_URL: `postgres://gatehouse:db-password@127.0.0.1:${port}/gatehouse` })(['keys', 'generate', '--out', out])
  t.equal(down.code, 0, 'the action itself succeeds (the trail never fails it)')
  t.equal(down.events('admin.keys_generated').length, 1)
  t.match(down.stderr, /warning: 1 audit event\(s\) could not be written/)
  t.notMatch(down.stderr, /db-password/)
})
