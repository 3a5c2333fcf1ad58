import t from 'tap'
import pg from 'pg'
import { startPostgres } from '../src/postgres.js'

t.test('a private PostgreSQL: databases, data that survives a crash, and a clean stop', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  t.match(server.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/)
  t.not(server.port, 5432, 'never the machine\'s shared server')

  const url = await server.createDatabase()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query('CREATE TABLE t (v text)')
  await client.query("INSERT INTO t VALUES ('kept')")
  await client.end()

  // A crash (SIGKILL on the postmaster) and a restart on the same port keep committed data.
  await server.kill()
  await t.rejects(server.query('SELECT 1'), 'nothing answers while it is down')
  await server.restart()
  const name = new URL(url).pathname.slice(1)
  const rows = await server.query('SELECT v FROM t', [], name)
  t.same(rows.rows, [{ v: 'kept' }])

  // A database made from a template carries the template's tables.
  const copy = await server.createDatabase(undefined, { template: name })
  const copied = await server.query('SELECT v FROM t', [], new URL(copy).pathname.slice(1))
  t.same(copied.rows, [{ v: 'kept' }])
})

t.test('names that could inject SQL are refused', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  await t.rejects(server.createDatabase('x; DROP DATABASE postgres'), /unsafe database name/)
})

t.test('pause() freezes open connections too; resume() thaws them', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const client = new pg.Client({ connectionString: server.url, query_timeout: 300 })
  client.on('error', () => undefined)
  await client.connect()
  t.teardown(() => client.end().catch(() => undefined))
  server.pause()
  t.teardown(() => server.resume())
  await t.rejects(client.query('SELECT 1'), /timeout/i, 'an open connection gets no answer')
  server.resume()
  t.same((await server.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'answers again')
})
