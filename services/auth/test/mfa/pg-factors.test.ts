/**
 * The PostgreSQL factor store (table second_factors, migrations/0003_factors.sql) against a
 * private PostgreSQL: the same contract as memory and Redis, then what only the database brings
 * (a user's factors deleted with the user, its constraints, a database down).
 */
import t from 'tap'
import { startPostgres } from '@gatehouse/test-harness'
import { migrateDatabase } from '../../src/database/migrate.js'
import { createPool, type Pool } from '../../src/database/pool.js'
import { PgFactorStore } from '../../src/mfa/pg-factors.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { factorStoreContract, passkey, recovery, totp, T0 } from './factor-store-contract.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const url = await server.createDatabase()
await migrateDatabase(url)
const pool: Pool = createPool({ url, migrate: false, poolSize: 5, statementTimeoutMs: 2000, connectTimeoutMs: 2000 }, () => undefined)
t.teardown(() => pool.end())

/** A row in users (the factors' foreign key), named after its id. */
async function addUser(id: string): Promise<void> {
  await pool.query(`INSERT INTO users (id, username, username_key, password_hash) VALUES ($1, $1, $1, 'h') ON CONFLICT DO NOTHING`, [id])
}

const store = new PgFactorStore({ pool })

t.test('PostgreSQL factor store: contract', async (t) => {
  factorStoreContract(t, async () => ({ store, addUser }))
})

t.test("deleting a user deletes its factors (ON DELETE CASCADE); its passkey's credential id is free again", async (t) => {
  await addUser('u_gone')
  const k = passkey('u_gone')
  await store.add(totp('u_gone'))
  await store.add(k)
  await store.add(recovery('u_gone', ['a']))
  await pool.query('DELETE FROM users WHERE id = $1', ['u_gone'])
  t.same(await store.list('u_gone'), [])
  t.equal(await store.findPasskey(k.credentialId), null)
  t.same(await store.usePasskey(k.credentialId, 1, T0), { status: 'not_found' })
  await addUser('u_next')
  t.equal(await store.add(passkey('u_next', { credentialId: k.credentialId })), 'added')
})

t.test('a factor for a user not in the directory is refused, never a 503', async (t) => {
  t.equal(await store.add(totp('u_nobody')), 'exists')
  t.equal(await store.add(passkey('u_nobody')), 'exists')
  await store.replaceRecoveryCodes(recovery('u_nobody', ['x']))
  t.same(await store.list('u_nobody'), [])
  t.equal(await store.add(totp('nul\u0000user')), 'exists')
  t.equal(await store.findPasskey('nul\u0000cred'), null)
  t.equal(await store.useRecoveryCode('u_nobody', 'h\u0000', T0), null)
})

t.test('the table: what a row holds; nothing secret in the clear; the database refuses two TOTPs itself', async (t) => {
  await addUser('u_rows')
  const f = totp('u_rows', { lastUsedAt: T0 + 7 })
  await store.add(f)
  const { rows } = await pool.query('SELECT id, user_id, kind, credential_id, data, created_at, last_used_at FROM second_factors WHERE user_id = $1', ['u_rows'])
  t.match(rows, [{ id: f.id, user_id: 'u_rows', kind: 'totp', credential_id: null, data: { label: f.label, sealedSecret: f.sealedSecret, lastStep: -1 } }])
  t.equal((rows[0].created_at as Date).getTime(), T0, 'times to the millisecond')
  t.equal((rows[0].last_used_at as Date).getTime(), T0 + 7)
  await t.rejects(pool.query(`INSERT INTO second_factors (id, user_id, kind, data, created_at) VALUES ('another', 'u_rows', 'totp', '{}', now())`), { code: '23505' })
  await t.rejects(pool.query(`INSERT INTO second_factors (id, user_id, kind, data, created_at) VALUES ('nocred', 'u_rows', 'passkey', '{}', now())`), { code: '23514' }, 'a passkey needs its credential id')
  await t.rejects(pool.query(`INSERT INTO second_factors (id, user_id, kind, data, created_at) VALUES ('bad id', 'u_rows', 'passkey', '{}', now())`), { code: '23514' })
})

t.test('PostgreSQL down: StoreUnavailable, never an outcome', async (t) => {
  const dead = createPool({ url: 'postgres://gatehouse:pw@127.0.0.1:1/none', migrate: false, poolSize: 1, statementTimeoutMs: 500, connectTimeoutMs: 500 }, () => undefined)
  t.teardown(() => dead.end())
  const s = new PgFactorStore({ pool: dead })
  await t.rejects(s.list('u_x'), StoreUnavailable)
  await t.rejects(s.add(totp('u_x')), StoreUnavailable)
  await t.rejects(s.useTotpStep('u_x', 'abc', 1, T0), StoreUnavailable)
  await t.rejects(s.usePasskey('cred', 1, T0), StoreUnavailable)
  await t.rejects(s.useRecoveryCode('u_x', 'h', T0), StoreUnavailable)
  const err = await s.removeAll('u_x').catch((e: unknown) => e)
  t.notMatch(String((err as Error).message), /pw@/, 'never the password of the URL')
})
