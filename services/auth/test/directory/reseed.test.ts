import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { hashPassword } from '../../src/directory/passwords.js'
import { RedisClientDirectory, RedisUserDirectory } from '../../src/directory/redis-directory.js'
import { DirectoryKeeper, directorySeeded, seedDirectories } from '../../src/directory/seed.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'

/** Issue 20, defect 3: a Redis that lost the directory gets it back from the running service. */

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

const passwordHash = await hashPassword('pw-' + randomBytes(4).toString('hex'))
const file = {
  users: [{ username: 'Alice', password_hash: passwordHash, roles: ['admin'], claims: {}, disabled: false }],
  clients: [{ client_id: 'svc', token_endpoint_auth_method: 'client_secret_basic' as const, client_secret: 'svc-secret', grant_types: ['client_credentials' as const], scope: 'internal:read', audience: 'api://resource', redirect_uris: [], post_logout_redirect_uris: [], jwks: null }],
}

function replica(p: string) {
  const redis = createRedis({ url: server.url, commandTimeoutMs: 2000 })
  const dirs = { users: new RedisUserDirectory({ redis, keyPrefix: p }), clients: new RedisClientDirectory({ redis, keyPrefix: p }) }
  const logged: Record<string, unknown>[] = []
  const keeper = new DirectoryKeeper({ redis, dirs, file, keyPrefix: p, intervalMs: 0, log: { info: () => undefined, warn: (o) => void logged.push(o as Record<string, unknown>) } })
  t.teardown(() => {
    keeper.close()
    redis.disconnect()
  })
  return { redis, dirs, keeper, logged }
}

async function settled(keeper: DirectoryKeeper): Promise<void> {
  for (let i = 0; i < 200 && !(await keeper.check()); i++) await new Promise((r) => setTimeout(r, 10))
}

t.test('a lost directory is noticed by check(), seeded again once, and reported missing until then', async (t) => {
  const p = `t${randomBytes(4).toString('hex')}:`
  const a = replica(p)
  await waitForRedis(a.redis)
  t.equal(await directorySeeded(a.redis, p), false, 'a new store: not seeded')
  await seedDirectories(a.redis, a.dirs, file, p)
  t.equal(await a.keeper.check(), true)

  await admin.call('FLUSHALL')
  t.equal(await a.keeper.check(), false, 'missing: readiness says so')
  t.equal(await a.keeper.check(), false, 'still missing while it is being seeded')
  await settled(a.keeper)
  t.equal(await a.keeper.check(), true)
  t.ok(await a.dirs.users.findByUsername('alice'), 'the user is back')
  t.ok(await a.dirs.clients.get('svc'), 'the client is back')
  t.match(a.logged, [{ event: 'directory.reseeded', users: 1, clients: 1 }])
})

t.test('replicas racing to seed again create each record once, without errors', async (t) => {
  const p = `t${randomBytes(4).toString('hex')}:`
  const replicas = Array.from({ length: 4 }, () => replica(p))
  await Promise.all(replicas.map((r) => waitForRedis(r.redis)))
  await seedDirectories(replicas[0]!.redis, replicas[0]!.dirs, file, p)
  const id = (await replicas[0]!.dirs.users.findByUsername('alice'))!.id
  await admin.call('FLUSHALL')
  t.same(await Promise.all(replicas.map((r) => r.keeper.check())), [false, false, false, false])
  await Promise.all(replicas.map((r) => settled(r.keeper)))
  const created = replicas.flatMap((r) => r.logged).filter((l) => l.event === 'directory.reseeded')
  t.equal(created.reduce((n, l) => n + (l.users as number), 0), 1, 'one replica created the user')
  t.equal(created.reduce((n, l) => n + (l.clients as number), 0), 1, 'one replica created the client')
  t.equal(replicas.flatMap((r) => r.logged).filter((l) => l.event === 'directory.reseed_failed').length, 0)
  t.equal((await replicas[1]!.dirs.users.findByUsername('alice'))!.id, id, 'the same subject as before')
})

t.test('a reconnection to an empty Redis triggers the check by itself', async (t) => {
  const p = `t${randomBytes(4).toString('hex')}:`
  const a = replica(p)
  await waitForRedis(a.redis)
  await seedDirectories(a.redis, a.dirs, file, p)
  a.keeper.start()
  await server.restart()
  for (let i = 0; i < 500 && !a.logged.some((l) => l.event === 'directory.reseeded'); i++) await new Promise((r) => setTimeout(r, 20))
  t.ok(a.logged.some((l) => l.event === 'directory.reseeded'), 'seeded again on the ready event')
  t.ok(await a.dirs.users.findByUsername('alice'))
})
