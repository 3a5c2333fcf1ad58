/**
 * `gatehouse db migrate` (DESIGN §10.2) against a private PostgreSQL: versioned migrations by
 * node-pg-migrate, applied once, safe to run again and from several processes at once.
 */
import t from 'tap'
import { freePort, startPostgres } from '@gatehouse/test-harness'
import { migrateDatabase, MIGRATIONS_TABLE } from '../../src/database/migrate.js'
import { cliRunner } from '../cli/harness.js'

t.test('db migrate: dry run, apply, nothing left, concurrent runs', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const url = await pg.createDatabase()
  const cli = cliRunner({ DATABASE_URL: url })

  const dry = await cli(['db', 'migrate', '--dry-run', '--json'])
  t.equal(dry.code, 0, dry.stderr)
  const pending = dry.json().pending as string[]
  t.ok(pending.includes('0001_directory'), 'the first migration is pending')
  const db = new URL(url).pathname.slice(1)
  t.same((await pg.query("SELECT to_regclass('users') AS t", [], db)).rows, [{ t: null }], 'a dry run changes nothing')

  const applied = await cli(['db', 'migrate', '--json'])
  t.equal(applied.code, 0, applied.stderr)
  t.same(applied.json().applied, pending)
  const recorded = await pg.query(`SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`, [], db)
  t.same(recorded.rows.map((r) => r.name), pending)
  t.same((await pg.query("SELECT to_regclass('users')::text AS t", [], db)).rows, [{ t: 'users' }])

  const again = await cli(['db', 'migrate'])
  t.equal(again.code, 0)
  t.match(again.stdout, /the database is up to date/)

  // Replicas started together with DATABASE_MIGRATE=1: one applies, the others wait and find nothing.
  const fresh = await pg.createDatabase()
  const results = await Promise.all([1, 2, 3].map(() => migrateDatabase(fresh)))
  t.same(results.flat().sort(), [...pending].sort(), 'each migration applied exactly once')
})

t.test('db migrate without a database, or with one that does not answer', async (t) => {
  const none = await cliRunner({})(['db', 'migrate'])
  t.equal(none.code, 1)
  t.match(none.stderr, /DATABASE_URL is not set/)

  const port = await freePort()
  const down = await cliRunner({ DATABASE_URL: `postgres://gatehouse:s3cret-password@127.0.0.1:${port}/gatehouse` })(['db', 'migrate'])
  t.equal(down.code, 1)
  t.match(down.stderr, /migration failed/)
  t.notMatch(down.stderr + down.stdout, /s3cret-password/, 'the password never appears')
  t.notMatch(down.stderr, /\n\s+at /, 'no stack trace')

  const bad = await cliRunner({ DATABASE_URL: 'mysql://root:s3cret-password@db/x' })(['db', 'migrate'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /DATABASE_URL must use postgres: or postgresql:/)
  t.notMatch(bad.stderr, /s3cret-password/, 'a configuration problem names the URL without its password')
})
