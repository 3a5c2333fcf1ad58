import { randomBytes } from 'node:crypto'
import t from 'tap'
import { parseInfo, startRedisCluster, type RespClient } from '@gatehouse/test-harness'
import { privateRedis } from '../helpers.js'
import { hashPassword } from '../../src/directory/passwords.js'
import { RedisClientDirectory, RedisUserDirectory } from '../../src/directory/redis-directory.js'
import { seedDirectories } from '../../src/directory/seed.js'
import { userEmailIndexKey, userIdIndexKey, userRecordKey } from '../../src/store/key-names.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { authenticateUser, userIdFor } from '../../src/directory/users.js'
import { clientDirectoryContract, userDirectoryContract } from './directory-contract.js'

const { redis, admin } = await privateRedis(t)

const prefix = (): string => `t${randomBytes(4).toString('hex')}:`

async function calls(c: RespClient, name: string): Promise<number> {
  const info = parseInfo(await c.call('INFO', 'commandstats'))
  return Number(/calls=(\d+)/.exec(info[`cmdstat_${name}`] ?? '')?.[1] ?? 0)
}

t.test('Redis user directory: contract', async (t) => {
  userDirectoryContract(t, async () => new RedisUserDirectory({ redis, keyPrefix: prefix() }))
})

t.test('Redis client directory: contract', async (t) => {
  clientDirectoryContract(t, async () => new RedisClientDirectory({ redis, keyPrefix: prefix() }))
})

t.test('listing uses SCAN, never KEYS', async (t) => {
  const dir = new RedisUserDirectory({ redis, keyPrefix: prefix() })
  for (let i = 0; i < 5; i++) await dir.add({ username: `u${i}`, passwordHash: 'h' })
  const scans = await calls(admin, 'scan')
  const page = await dir.list({ limit: 2 })
  t.ok(page.users.length >= 1)
  t.ok((await calls(admin, 'scan')) > scans)
  t.equal(await calls(admin, 'keys'), 0)
  await t.rejects(dir.list({ cursor: 'nope' }), RangeError)
})

t.test('a stale id index entry finds nothing and does not block the name', async (t) => {
  const p = prefix()
  const dir = new RedisUserDirectory({ redis, keyPrefix: p })
  // What a crash between writing the index and the record leaves behind.
  await admin.call('SET', userIdIndexKey('u_stalestalestalestale00', p), 'gina')
  t.equal(await dir.findById('u_stalestalestalestale00'), null)
  const r = await dir.add({ username: 'Gina', passwordHash: 'h' })
  t.equal(r.status, 'created')
  t.equal(await dir.findById('u_stalestalestalestale00'), null, 'the stale entry does not reach the new record')
  t.equal(await dir.setPassword('u_stalestalestalestale00', 'x'), null)
  t.equal(await dir.delete('u_stalestalestalestale00'), null)
  t.ok(await dir.findByUsername('gina'), 'and cannot delete it')
})

t.test('a stale email index entry finds nothing and is taken over; one of an add in flight is not', async (t) => {
  const p = prefix()
  const dir = new RedisUserDirectory({ redis, keyPrefix: p })
  const { user: old } = (await dir.add({ username: 'olga', email: 'olga@example.com', passwordHash: 'h' })) as { user: { id: string } }
  t.equal(await admin.call('PTTL', userEmailIndexKey('olga@example.com', p)), -1, 'made permanent once the record carries it')
  // What a crash between changing the record and releasing the index leaves: the index still
  // names a user who no longer carries the email.
  await admin.call('HDEL', userRecordKey('olga', p), 'email')
  t.equal(await dir.findByEmail('olga@example.com'), null, 'the stale entry finds nothing')
  const r = await dir.add({ username: 'otto', email: 'OLGA@example.com', passwordHash: 'h' })
  t.equal(r.status, 'created', 'nor blocks the email')
  t.match(await dir.findByEmail('olga@example.com'), { username: 'otto' })
  t.not((await dir.findByEmail('olga@example.com'))!.id, old.id)
  // An entry pointing at a user that no longer exists at all (a crash during delete).
  await admin.call('SET', userEmailIndexKey('ghost@example.com', p), 'u_ghostghostghostghost00')
  t.equal(await dir.findByEmail('ghost@example.com'), null)
  t.equal((await dir.add({ username: 'gus', email: 'ghost@example.com', passwordHash: 'h' })).status, 'created')
  // An add of the email in flight (its reservation still expires) holds it.
  await admin.call('SET', userEmailIndexKey('busy@example.com', p), 'u_inflightinflightinfli', 'PX', '60000')
  t.same(await dir.add({ username: 'bea', email: 'busy@example.com', passwordHash: 'h' }), { status: 'exists' })
  t.equal(await dir.findByUsername('bea'), null, 'and nothing was written')
})

t.test('a given subject (an import that keeps subs) is never another user\'s', async (t) => {
  const p = prefix()
  const dir = new RedisUserDirectory({ redis, keyPrefix: p })
  const sub = 'u_importedimportedimpor'
  t.match(await dir.add({ username: 'first', passwordHash: 'h', id: sub }), { status: 'created', user: { id: sub } })
  t.same(await dir.add({ username: 'second', email: 'second@example.com', passwordHash: 'h', id: sub }), { status: 'exists' })
  t.equal(await dir.findByUsername('second'), null)
  t.equal(await dir.findByEmail('second@example.com'), null, 'its email reservation released')
  t.match(await dir.findById(sub), { username: 'first' }, 'the subject still names the first user')
})

t.test('a malformed record is a store failure, not a user', async (t) => {
  const p = prefix()
  const dir = new RedisUserDirectory({ redis, keyPrefix: p })
  await admin.call('HSET', userRecordKey('mal', p), 'id', 'u_x', 'username', 'mal', 'password_hash', 'h', 'roles', 'not json')
  await t.rejects(dir.findByUsername('mal'), StoreUnavailable)
})

t.test('seeding: each config entry once, never over a change made since', async (t) => {
  const p = prefix()
  const users = new RedisUserDirectory({ redis, keyPrefix: p })
  const clients = new RedisClientDirectory({ redis, keyPrefix: p })
  const file = {
    users: [{ username: 'Hal', password: 'hal-password', roles: ['user'], claims: { name: 'Hal' }, disabled: false }],
    clients: [{ client_id: 'seeded', token_endpoint_auth_method: 'client_secret_basic' as const, client_secret: 'seed-secret', grant_types: ['client_credentials' as const], scope: 'internal:read', audience: 'api://resource', redirect_uris: [], post_logout_redirect_uris: [], jwks: null }],
  }
  t.same(await seedDirectories(redis, { users, clients }, file, p), { users: 1, clients: 1 })
  const hal = await authenticateUser(users, 'hal', 'hal-password')
  t.equal(hal?.id, userIdFor('Hal'), 'the same subject as the in-memory directory gives')
  t.ok(await clients.get('seeded'))

  // An operator changes the password and deletes the client; a restart seeds again.
  await users.setPassword(hal!.id, await hashPassword('changed-password'))
  await clients.delete('seeded')
  t.same(await seedDirectories(redis, { users, clients }, file, p), { users: 0, clients: 0 })
  t.ok(await authenticateUser(users, 'hal', 'changed-password'), 'the changed password stands')
  t.equal(await clients.get('seeded'), null, 'the deleted client stays deleted')

  // A user that exists already (added with the CLI) is not replaced by the file's.
  const p2 = prefix()
  const users2 = new RedisUserDirectory({ redis, keyPrefix: p2 })
  await users2.add({ username: 'hal', passwordHash: await hashPassword('cli-password') })
  t.same(await seedDirectories(redis, { users: users2, clients: new RedisClientDirectory({ redis, keyPrefix: p2 }) }, file, p2), { users: 0, clients: 1 })
  t.ok(await authenticateUser(users2, 'HAL', 'cli-password'))
})

t.test('Redis Cluster: the contracts hold and listing walks every master', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  const c = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 3000 })
  await waitForRedis(c, 10_000)
  t.teardown(() => c.disconnect())
  userDirectoryContract(t, async () => new RedisUserDirectory({ redis: c, keyPrefix: prefix() }))
  clientDirectoryContract(t, async () => new RedisClientDirectory({ redis: c, keyPrefix: prefix() }))
})
