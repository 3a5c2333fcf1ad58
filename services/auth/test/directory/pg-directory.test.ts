/**
 * The PostgreSQL directories (DESIGN §10.2) against a private PostgreSQL: the same contract as the
 * memory and Redis directories, then what only a database brings (constraints deciding races,
 * keyset paging, search, literal storage of hostile names, emails).
 */
import t from 'tap'
import { startPostgres } from '@gatehouse/test-harness'
import { migrateDatabase } from '../../src/database/migrate.js'
import { createPool, type Pool } from '../../src/database/pool.js'
import { containsPattern, PgClientDirectory, PgUserDirectory, pgSeedMarks } from '../../src/directory/pg-directory.js'
import { PgResources } from '../../src/directory/pg-resources.js'
import { seedWith } from '../../src/directory/seed.js'
import { userIdFor, type User } from '../../src/directory/users.js'
import type { DirectoryChange } from '../../src/directory/directory-cache.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { clientDirectoryContract, userDirectoryContract } from './directory-contract.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const template = `tpl_${process.pid}`
await migrateDatabase(await server.createDatabase(template))
const pools: Pool[] = []
t.teardown(async () => {
  for (const p of pools) await p.end()
})

/** A fresh, migrated database (a copy of the template) and a pool on it. */
async function freshPool(): Promise<Pool> {
  const url = await server.createDatabase(undefined, { template })
  const pool = createPool({ url, migrate: false, poolSize: 5, statementTimeoutMs: 2000, connectTimeoutMs: 2000 }, () => undefined)
  pools.push(pool)
  return pool
}

// The contract names its records randomly, so its tests share one database (a copy costs ~1 s here).
const shared = await freshPool()

t.test('PostgreSQL user directory: contract', async (t) => {
  userDirectoryContract(t, async () => new PgUserDirectory({ pool: shared }))
})

t.test('PostgreSQL client directory: contract', async (t) => {
  clientDirectoryContract(t, async () => new PgClientDirectory({ pool: shared }))
})

t.test('Alice and alice added at once: the unique key decides, one is created', async (t) => {
  const dir = new PgUserDirectory({ pool: await freshPool() })
  for (let round = 0; round < 10; round++) {
    const results = await Promise.all([`Alice${round}`, `alice${round}`].map((username) => dir.add({ username, passwordHash: 'h' })))
    t.same(results.map((r) => r.status).sort(), ['created', 'exists'], `round ${round}`)
  }
  const emails = await Promise.all(['Bob@Example.com', 'bob@example.COM'].map((email, i) => dir.add({ username: `bob${i}`, email, passwordHash: 'h' })))
  t.same(emails.map((r) => r.status).sort(), ['created', 'exists'], 'emails are unique case-insensitively too')
})

t.test('emails: find in any case, set, clear, refuse a taken one', async (t) => {
  const dir = new PgUserDirectory({ pool: await freshPool() })
  const a = ((await dir.add({ username: 'ann', email: 'Ann@Example.com', passwordHash: 'h' })) as { user: User }).user
  const b = ((await dir.add({ username: 'ben', passwordHash: 'h' })) as { user: User }).user
  t.equal(a.email, 'Ann@Example.com', 'kept as given')
  t.equal(b.email, undefined)
  t.same(await dir.findByEmail('ann@example.COM'), a)
  t.equal(await dir.findByEmail('nobody@example.com'), null)
  t.same(await dir.setEmail(b.id, 'ANN@example.com'), { status: 'exists' })
  t.match(await dir.setEmail(b.id, 'ben@example.com'), { status: 'updated', user: { id: b.id, email: 'ben@example.com' } })
  t.match(await dir.setEmail(a.id, null), { status: 'updated', user: { email: undefined } })
  t.match(await dir.setEmail(b.id, 'ann@example.com'), { status: 'updated' }, 'a cleared email is free again')
  t.same(await dir.setEmail('u_AAAAAAAAAAAAAAAAAAAAAA', 'x@example.com'), { status: 'not_found' })
  t.same(await dir.add({ username: 'carl', email: 'ANN@example.com', passwordHash: 'h' }), { status: 'exists' }, 'add refuses a taken email')
})

t.test('keyset paging across 250 users: every user once, in username order, stable under inserts', async (t) => {
  const pool = await freshPool()
  const dir = new PgUserDirectory({ pool })
  const names = Array.from({ length: 250 }, (_, i) => `user${String(i).padStart(3, '0')}`)
  await pool.query(`INSERT INTO users (id, username, username_key, password_hash) SELECT 'u_' || n, n, n, 'h' FROM unnest($1::text[]) AS n`, [names])
  const seen: string[] = []
  let cursor: string | undefined
  let pages = 0
  do {
    const page = await dir.list({ cursor, limit: 40 })
    seen.push(...page.users.map((u) => u.username))
    // A user added behind the cursor does not shift what comes next (offset paging would).
    if (pages === 2) await dir.add({ username: 'user000a', passwordHash: 'h' })
    cursor = page.cursor ?? undefined
    pages++
  } while (cursor !== undefined)
  t.equal(pages, 7)
  t.same(seen, names, 'each once, in order')
  await t.rejects(dir.list({ cursor: 'not a cursor!' }), RangeError)
  await t.rejects(dir.list({ cursor: 'AA' }), RangeError, 'a cursor holding NUL')
  t.equal((await dir.list({ limit: 100_000 })).users.length, 251 > 1000 ? 1000 : 251, 'the limit is capped at 1000')
})

t.test('search is a case-insensitive substring; %, _ and \\ match only themselves', async (t) => {
  const dir = new PgUserDirectory({ pool: await freshPool() })
  for (const username of ['100%sure', '100xsure', 'snake_case', 'snakeXcase', 'back\\slash', 'Mallory']) await dir.add({ username, passwordHash: 'h' })
  await dir.add({ username: 'eve', email: 'Eve@Corp.example', passwordHash: 'h' })
  const names = async (search: string) => (await dir.list({ search })).users.map((u) => u.username)
  t.same(await names('0%s'), ['100%sure'])
  t.same(await names('e_c'), ['snake_case'])
  t.same(await names('k\\s'), ['back\\slash'])
  t.same(await names('MALL'), ['Mallory'])
  t.same(await names('corp.EXAMPLE'), ['eve'], 'emails are searched too')
  t.same(await names('%'), ['100%sure'])
  t.equal(containsPattern('a%b_c\\d'), '%a\\%b\\_c\\\\d%')

  const clients = new PgClientDirectory({ pool: await freshPool() })
  const base = { token_endpoint_auth_method: 'none' as const, grant_types: ['authorization_code' as const], scope: '', audience: 'api', redirect_uris: ['https://x.example/cb'], post_logout_redirect_uris: [], jwks: null }
  await clients.add({ ...base, client_id: 'billing_app', client_name: 'Billing' })
  await clients.add({ ...base, client_id: 'billingXapp', client_name: 'Reports 100%' })
  t.same((await clients.list({ search: 'g_a' })).clients.map((c) => c.id), ['billing_app'])
  t.same((await clients.list({ search: '100%' })).clients.map((c) => c.id), ['billingXapp'], 'client names are searched too')
})

t.test('SQL in usernames, emails and client ids is stored and found literally', async (t) => {
  const pool = await freshPool()
  const dir = new PgUserDirectory({ pool })
  const hostile = ["robert'); DROP TABLE users;--", "' OR '1'='1", 'x\\\'; SELECT pg_sleep(10);--', '$1', 'a" OR 1=1 --']
  for (const username of hostile) {
    const r = await dir.add({ username, email: `${username}@example.com`, passwordHash: 'h' })
    t.equal(r.status, 'created', username)
  }
  for (const username of hostile) {
    t.equal((await dir.findByUsername(username))?.username, username)
    t.equal((await dir.findByEmail(`${username}@example.com`))?.username, username)
  }
  t.equal(await dir.findByUsername("' OR '1'='1' --"), null)
  t.equal((await pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, hostile.length, 'the table is intact')
  t.equal(await dir.findByUsername('nul\u0000byte'), null, 'a NUL byte (which PostgreSQL text cannot hold) finds nothing, not a 503')
  t.equal(await dir.findByEmail('nul\u0000@example.com'), null)
  t.equal(await dir.findById('u_\u0000'), null)
  t.equal(await new PgClientDirectory({ pool }).get('c\u0000'), null)
  t.same((await dir.list({ search: '\u0000' })).users.length, hostile.length, 'a NUL in a search is ignored')
})

t.test('changes are announced (for the replicas\' caches); reads are not', async (t) => {
  const heard: DirectoryChange[] = []
  const changes = { announce: async (c: DirectoryChange) => void heard.push(c) }
  const pool = await freshPool()
  const users = new PgUserDirectory({ pool, changes })
  const clients = new PgClientDirectory({ pool, changes })
  const u = ((await users.add({ username: 'zoe', passwordHash: 'h' })) as { user: User }).user
  await clients.add({ client_id: 'svc', token_endpoint_auth_method: 'client_secret_basic', client_secret: 's', grant_types: ['client_credentials'], scope: 'a', audience: 'api', redirect_uris: [], post_logout_redirect_uris: [], jwks: null })
  await users.findById(u.id)
  t.same(heard, [], 'adding and reading announce nothing')
  await users.setPassword(u.id, 'h2')
  await users.setDisabled(u.id, true)
  await users.setRoles(u.id, ['r'])
  await users.setEmail(u.id, 'zoe@example.com')
  await users.delete(u.id)
  await clients.rotateSecret('svc', 'sha256:' + 'A'.repeat(43))
  await clients.delete('svc')
  await users.setPassword(u.id, 'h3')
  t.same(heard, [...Array(5).fill({ kind: 'user', id: u.id }), { kind: 'client', id: 'svc' }, { kind: 'client', id: 'svc' }], 'each change once; a change to nothing announces nothing')
})

t.test('seeding: each config-file entry once, resources included', async (t) => {
  const pool = await freshPool()
  const dirs = { users: new PgUserDirectory({ pool }), clients: new PgClientDirectory({ pool }) }
  const resources = new PgResources({ pool, log: { warn: () => undefined } })
  const file = {
    users: [{ username: 'Dev', password_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g', roles: [], claims: {}, disabled: false }],
    clients: [{ client_id: 'cli', token_endpoint_auth_method: 'client_secret_basic' as const, client_secret: 'cli-secret', grant_types: ['password' as const], scope: 'openid', audience: 'api', redirect_uris: [], post_logout_redirect_uris: [], jwks: null }],
    resources: [{ audience: 'api', scopes: ['read', 'write'] }],
  }
  const marks = pgSeedMarks(pool)
  t.same(await seedWith(marks, dirs, file), { users: 1, clients: 1 })
  t.equal(await resources.seed(file.resources, marks), 1)
  t.equal((await dirs.users.findByUsername('dev'))?.id, userIdFor('Dev'), 'the stable subject of the memory directory')
  await dirs.users.delete(userIdFor('Dev'))
  await pool.query("DELETE FROM resources WHERE audience = 'api'")
  t.same(await seedWith(marks, dirs, file), { users: 0, clients: 0 }, 'a user deleted with the CLI is not brought back')
  t.equal(await resources.seed(file.resources, marks), 0)
  await pool.query("INSERT INTO resources (audience, scopes) VALUES ('api2', '{x}')")
  t.same(resources.list(), [], 'nothing until loaded')
  await resources.load()
  t.same(resources.list(), [{ audience: 'api2', scopes: ['x'] }])
})

t.test('a database that does not answer: StoreUnavailable within the bound, never a hang', async (t) => {
  const pool = createPool({ url: server.databaseUrl(template).replace(/:\d+\//, ':1/'), migrate: false, poolSize: 2, statementTimeoutMs: 500, connectTimeoutMs: 500 }, () => undefined)
  pools.push(pool)
  const dir = new PgUserDirectory({ pool })
  const started = Date.now()
  await t.rejects(dir.findByUsername('alice'), StoreUnavailable)
  t.ok(Date.now() - started < 3000)
  const resources = new PgResources({ pool, log: { warn: () => undefined } })
  await t.rejects(resources.load(), StoreUnavailable)
})
