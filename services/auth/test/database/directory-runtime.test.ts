/**
 * DATABASE_URL in the service and the CLI (DESIGN §10.2): an outdated schema is refused at start
 * with the command that fixes it; DATABASE_MIGRATE=1 applies it; the config file seeds users,
 * clients and resources once; PostgreSQL without Redis runs (families in memory); the CLI's
 * users and clients commands work on the database; `gatehouse db import-redis` moves a Redis-held
 * directory over, keeping every subject and hash, and is safe to run again.
 */
import t from 'tap'
import { startPostgres, startRedis } from '@gatehouse/test-harness'
import { loadConfig } from '../../src/config.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'
import { hashPassword } from '../../src/directory/passwords.js'
import { RedisClientDirectory, RedisUserDirectory } from '../../src/directory/redis-directory.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { userIdFor } from '../../src/directory/users.js'
import { cliRunner, liveService } from '../cli/harness.js'
import { basic, form } from '../helpers.js'

const pg = await startPostgres()
t.teardown(() => pg.stop())
const silent = { info() {}, warn() {} }
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

t.test('pending migrations: the service refuses to start and names `gatehouse db migrate`', async (t) => {
  const url = await pg.createDatabase()
  const config = await loadConfig({ LOG_LEVEL: 'info', DATABASE_URL: url })
  await t.rejects(createRuntime(config, silent), /pending migrations: 0001_directory.*gatehouse db migrate.*DATABASE_MIGRATE=1/)
  const left = await pg.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'gatehouse-auth'")
  t.equal(left.rows[0].n, 0, 'the pool was closed')
})

t.test('PostgreSQL without Redis: migrated at start, seeded once, logins and discovery from the database', async (t) => {
  const url = await pg.createDatabase()
  const db = new URL(url).pathname.slice(1)
  const env = { LOG_LEVEL: 'info', DATABASE_URL: url, DATABASE_MIGRATE: '1' }
  const { app, deps } = await liveService(t, env)
  const login = await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'Alice', password: 'alice-password' }) })
  t.equal(login.statusCode, 200, login.body)
  const seeded = await pg.query('SELECT id FROM users WHERE username_key = $1', ['alice'], db)
  t.same(seeded.rows, [{ id: userIdFor('alice') }], 'the config file seeded the users table with the stable subject')
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.match(ready.json(), { status: 'ready', checks: { database: 'ok', store: 'ok' } })

  // Resources come from the table (seeded from the file), read again on its refresh.
  await pg.query("INSERT INTO resources (audience, scopes) VALUES ('api://extra', '{extra:read}')", [], db)
  await (deps.resources as unknown as { load(): Promise<void> }).load()
  const discovery = (await app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.ok(discovery.scopes_supported.includes('extra:read'), 'scopes_supported from the resources table')

  // The CLI on the same database, without Redis.
  const cli = cliRunner({ DATABASE_URL: url })
  const added = await cli(['users', 'add', 'Nora', '--password-stdin', '--role', 'user', '--json'], { stdin: 'nora-password-1' })
  t.equal(added.code, 0, added.stderr)
  const nora = await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'nora', password: 'nora-password-1' }) })
  t.equal(nora.statusCode, 200, 'a user added with the CLI signs in at once')
  t.equal((await cli(['users', 'add', 'NORA', '--password-stdin'], { stdin: 'nora-password-2' })).code, 1, 'a taken name (any case) is refused')
  const listed = await cli(['users', 'list', '--json'])
  t.equal(listed.code, 0, listed.stderr)
  t.ok(JSON.stringify(listed.json()).includes('"Nora"'))
  t.equal((await cli(['users', 'disable', 'nora'])).code, 0)
  const refused = await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'nora', password: 'nora-password-1' }) })
  t.equal(refused.statusCode, 400, 'disabled with the CLI: refused at once')
  const clients = await cli(['clients', 'list', '--json'])
  t.ok(JSON.stringify(clients.json()).includes('reporting-service'), 'clients listed from the database')
  const resources = await cli(['db', 'resources', '--json'])
  t.match(resources.json(), { source: 'database', resources: [{ audience: 'api://extra' }, { audience: 'api://reports' }, { audience: 'api://resource' }] })

  // A second start seeds nothing again: a user deleted with the CLI stays deleted.
  t.equal((await cli(['users', 'delete', 'bob', '--yes'])).code, 0)
  const again = await createRuntime(await loadConfig(env), silent)
  await again.close()
  t.equal((await pg.query("SELECT count(*)::int AS n FROM users WHERE username_key = 'bob'", [], db)).rows[0].n, 0)
})

t.test('db import-redis: every user and client with its subject and hashes; dry run; safe to run again', async (t) => {
  const redisServer = await startRedis()
  t.teardown(() => redisServer.stop())
  const redis = createRedis({ url: redisServer.url })
  await waitForRedis(redis)
  t.teardown(() => redis.disconnect())
  const users = new RedisUserDirectory({ redis })
  const clients = new RedisClientDirectory({ redis })
  const hash = await hashPassword('moved-password')
  const ids: string[] = []
  for (let i = 0; i < 7; i++) {
    const r = await users.add({ username: `Moved${i}`, passwordHash: hash, roles: ['r'], claims: { n: i }, disabled: i === 6 })
    if (r.status === 'created') ids.push(r.user.id)
  }
  await clients.add({ client_id: 'legacy', client_name: 'Legacy', token_endpoint_auth_method: 'client_secret_basic', client_secret: 'legacy-secret', grant_types: ['client_credentials'], scope: 'internal:read', audience: 'api://resource', redirect_uris: [], post_logout_redirect_uris: [], jwks: null })

  const url = await pg.createDatabase()
  const db = new URL(url).pathname.slice(1)
  const cli = cliRunner({ DATABASE_URL: url, REDIS_URL: redisServer.url })
  t.equal((await cli(['db', 'migrate'])).code, 0)
  const dry = await cli(['db', 'import-redis', '--dry-run', '--json'])
  t.equal(dry.code, 0, dry.stderr)
  t.same(dry.json(), { dry_run: true, users: { copied: 7, skipped: 0 }, clients: { copied: 1, skipped: 0 } })
  t.equal((await pg.query('SELECT count(*)::int AS n FROM users', [], db)).rows[0].n, 0, 'a dry run writes nothing')

  const first = await cli(['db', 'import-redis', '--json'])
  t.equal(first.code, 0, first.stderr)
  t.same(first.json(), { dry_run: false, users: { copied: 7, skipped: 0 }, clients: { copied: 1, skipped: 0 } })
  t.equal(first.events('admin.directory_imported').length, 1, 'audited')
  const rows = await pg.query('SELECT id, password_hash, disabled FROM users ORDER BY username_key', [], db)
  t.same(rows.rows.map((r) => r.id).sort(), [...ids].sort(), 'every subject kept')
  t.ok(rows.rows.every((r) => r.password_hash === hash), 'every hash kept')
  t.same(rows.rows.map((r) => r.disabled), [false, false, false, false, false, false, true])
  const again = await cli(['db', 'import-redis', '--json'])
  t.same(again.json(), { dry_run: false, users: { copied: 0, skipped: 7 }, clients: { copied: 0, skipped: 1 } }, 'a second run copies nothing')

  // The service on the database: the moved user signs in with the old password, the client with its secret.
  const { app } = await liveService(t, { LOG_LEVEL: 'info', DATABASE_URL: url, REDIS_URL: redisServer.url })
  const login = await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'moved3', password: 'moved-password' }) })
  t.equal(login.statusCode, 200, login.body)
  const cc = await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('legacy', 'legacy-secret') }, payload: form({ grant_type: 'client_credentials' }) })
  t.equal(cc.statusCode, 200, cc.body)

  t.match((await cliRunner({ DATABASE_URL: url })(['db', 'import-redis'])).stderr, /REDIS_URL .* is not set/)
})
