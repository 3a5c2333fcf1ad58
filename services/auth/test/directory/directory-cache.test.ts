import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { connectResp, monitorRedis, startRedis, type MonitoredCommand, ManualClock } from '@gatehouse/test-harness'
import { hashClientSecret } from '../../src/directory/clients.js'
import { DirectoryCache, RedisChangeAnnouncer } from '../../src/directory/directory-cache.js'
import { RedisClientDirectory, RedisUserDirectory } from '../../src/directory/redis-directory.js'
import { directoryChangesChannel } from '../../src/store/key-names.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())
const monitor = await monitorRedis(server.port)
t.teardown(() => monitor.close())

const prefix = (): string => `t${randomBytes(4).toString('hex')}:`

/** A service connection (what bootstrap.ts opens) and, separately, a writer's (what the CLI opens). */
async function connection(name: string) {
  const redis = createRedis({ url: server.url, commandTimeoutMs: 2000, connectionName: name })
  await waitForRedis(redis)
  t.teardown(() => redis.disconnect())
  return redis
}
const service = await connection('service')
const writer = await connection('cli')

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function liveCache(t: Test, p: string, opts: { clock?: () => number; ttlMs?: number; maxEntries?: number } = {}): Promise<DirectoryCache> {
  const cache = new DirectoryCache({ redis: service, keyPrefix: p, ...opts })
  t.teardown(() => cache.close())
  cache.start()
  await until('the subscription', () => cache.live)
  return cache
}

/** The commands sent while `fn` runs (by any client but the monitor; script internals excluded). */
async function commandsDuring(fn: () => Promise<void>): Promise<MonitoredCommand[]> {
  const mark = async (): Promise<void> => {
    const m = `mark-${randomBytes(6).toString('hex')}`
    await admin.call('ECHO', m)
    await monitor.waitFor((c) => c.args[0] === 'echo' && c.args[1] === m)
  }
  await mark()
  monitor.commands.splice(0)
  await fn()
  await mark()
  return monitor.commands.splice(0).filter((c) => c.source !== 'lua' && c.args[0] !== 'echo')
}

const client = (id: string) => ({
  client_id: id,
  token_endpoint_auth_method: 'client_secret_basic' as const,
  client_secret: 'first-secret',
  grant_types: ['client_credentials' as const],
  scope: 'internal:read',
  audience: 'api://resource',
  redirect_uris: [],
  post_logout_redirect_uris: [],
  jwks: null,
})

t.test('a client is read from Redis once, then served from the copy: no round trip per request', async (t) => {
  const p = prefix()
  const cache = await liveCache(t, p)
  const stored = new RedisClientDirectory({ redis: service, keyPrefix: p })
  await stored.add(client('svc'))
  const clients = cache.clients(stored)
  const first = await commandsDuring(async () => {
    // A burst of concurrent lookups shares one read.
    const all = await Promise.all(Array.from({ length: 20 }, () => clients.get('svc')))
    t.ok(all.every((c) => c?.id === 'svc'))
  })
  t.same(first.map((c) => c.args[0]), ['hgetall'], 'twenty concurrent lookups: one HGETALL')
  const later = await commandsDuring(async () => {
    for (let i = 0; i < 100; i++) t.equal((await clients.get('svc'))?.id, 'svc')
  })
  t.same(later, [], 'a hundred lookups: no command at all')
  t.equal(await clients.get('nope'), null)
  t.equal((await commandsDuring(async () => void (await clients.get('nope')))).length, 1, 'unknown ids are not remembered (an attacker cannot fill the cache)')
})

t.test('a change made elsewhere (the CLI) is gone from every copy when the change returns', async (t) => {
  const p = prefix()
  const cache = await liveCache(t, p)
  const clients = cache.clients(new RedisClientDirectory({ redis: service, keyPrefix: p }))
  const users = cache.users(new RedisUserDirectory({ redis: service, keyPrefix: p }))
  // The writer: another connection, another directory object, as `gatehouse clients ...` has.
  const cliClients = new RedisClientDirectory({ redis: writer, keyPrefix: p })
  const cliUsers = new RedisUserDirectory({ redis: writer, keyPrefix: p })
  await cliClients.add(client('svc'))
  const added = await cliUsers.add({ username: 'ann', passwordHash: 'h', roles: ['user'] })
  if (added.status !== 'created') throw new Error('setup')
  const id = added.user.id

  const before = (await clients.get('svc'))!.secretHash!
  await users.findById(id)
  await cliClients.rotateSecret('svc', hashClientSecret('second-secret'))
  t.notSame((await clients.get('svc'))!.secretHash, before, 'rotate-secret: the next lookup has the new secret')

  t.same((await users.findById(id))?.roles, ['user'])
  await cliUsers.setRoles(id, ['admin'])
  t.same((await users.findById(id))?.roles, ['admin'], 'set-roles: the next refresh sees the new roles')
  await cliUsers.setEmail(id, 'ann@example.com')
  t.equal((await users.findById(id))?.email, 'ann@example.com', 'set-email (announced): seen at once')
  await users.setEmail(id, 'ann2@example.com')
  t.equal((await users.findById(id))?.email, 'ann2@example.com', 'set-email through the cache: its own copy dropped')
  t.match(await users.findByEmail('ANN2@example.com'), { id }, 'found by email through the cache')
  await cliUsers.setDisabled(id, true)
  t.equal((await users.findById(id))?.disabled, true, 'disable: seen at once')
  await cliUsers.delete(id)
  t.equal(await users.findById(id), null, 'delete: seen at once')
  await cliClients.delete('svc')
  t.equal(await clients.get('svc'), null, 'a deleted client is gone at once')
})

t.test('an announcement acknowledges only after the copy is dropped; with nobody listening it returns at once', async (t) => {
  const p = prefix()
  const announcer = new RedisChangeAnnouncer(writer, { keyPrefix: p, timeoutMs: 5000 })
  const started = Date.now()
  await announcer.announce({ kind: 'client', id: 'x' })
  t.ok(Date.now() - started < 1000, 'no subscriber: no wait')

  // A subscriber that never acknowledges (a replica wedged): the announcement gives up at its bound.
  const deaf = await connectResp(server.port)
  t.teardown(() => deaf.close())
  await deaf.call('SUBSCRIBE', directoryChangesChannel(p))
  const bounded = new RedisChangeAnnouncer(writer, { keyPrefix: p, timeoutMs: 300 })
  const t0 = Date.now()
  await bounded.announce({ kind: 'client', id: 'x' })
  const took = Date.now() - t0
  t.ok(took >= 250 && took < 3000, `waited for the acknowledgement, then gave up (${took} ms)`)
})

t.test('while the subscription is down nothing is served from the copy; it comes back empty', async (t) => {
  const p = prefix()
  const cache = await liveCache(t, p)
  const stored = new RedisClientDirectory({ redis: service, keyPrefix: p })
  await stored.add(client('svc'))
  const clients = cache.clients(stored)
  await clients.get('svc')
  t.equal(cache.size.clients, 1)
  // Kill the cache's subscriber connection (the only one subscribed to the channel).
  const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'))
  const subscriber = /id=(\d+) /.exec(list)?.[1]
  t.ok(subscriber, 'the cache holds a pubsub connection')
  await admin.call('CLIENT', 'KILL', 'ID', subscriber!)
  await until('the cache to notice', () => !cache.live)
  t.equal(cache.size.clients, 0, 'the copies are dropped: announcements may be missed now')
  const direct = await commandsDuring(async () => {
    await clients.get('svc')
    await clients.get('svc')
  })
  t.equal(direct.filter((c) => c.args[0] === 'hgetall').length, 2, 'every lookup reads Redis while down')
  t.equal(cache.size.clients, 0, 'and nothing is kept')
  await until('the subscription to come back', () => cache.live, 10_000)
  await clients.get('svc')
  t.equal((await commandsDuring(async () => void (await clients.get('svc')))).length, 0, 'served from the copy again')
})

t.test('a lookup in flight when a change is announced is not kept', async (t) => {
  const p = prefix()
  const cache = await liveCache(t, p)
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const stale = { id: 'svc' } as never
  const slow = cache.clients({
    get: async () => {
      await gate
      return stale
    },
  } as never)
  const pending = slow.get('svc')
  cache.invalidate({ kind: 'client', id: 'svc' })
  release()
  t.equal(await pending, stale, 'the lookup that started before answers its caller')
  t.equal(cache.size.clients, 0, 'but its answer, read before the change, is not kept')
})

t.test('copies expire after their TTL and are bounded in number', async (t) => {
  const p = prefix()
  const clock = new ManualClock()
  const cache = await liveCache(t, p, { clock: clock.now, ttlMs: 30_000, maxEntries: 3 })
  const stored = new RedisClientDirectory({ redis: service, keyPrefix: p })
  for (const id of ['a', 'b', 'c', 'd']) await stored.add(client(id))
  const clients = cache.clients(stored)
  for (const id of ['a', 'b', 'c', 'd']) await clients.get(id)
  t.equal(cache.size.clients, 3, 'at most maxEntries copies (the oldest went)')
  t.equal((await commandsDuring(async () => void (await clients.get('d')))).length, 0)
  clock.advanceSeconds(31)
  t.equal((await commandsDuring(async () => void (await clients.get('d')))).length, 1, 'an expired copy is read again')
})
