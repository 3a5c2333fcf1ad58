import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import t from 'tap'
import { freePort, monitorRedis, parseInfo, startRedis, type RespClient, type RespValue, ManualClock } from '@gatehouse/test-harness'
import { DEFAULT_KEY_PREFIX, familyKeys } from '../../src/store/key-names.js'
import { RedisFamilyStore } from '../../src/families/redis-family-store.js'
import { createRedis, waitForRedis, type RedisConnectionOptions } from '../../src/store/redis-connection.js'
import { RefreshTokenCodec } from '../../src/families/refresh-token-codec.js'
import { type FamilyPolicy, type FamilyStore } from '../../src/families/types.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { CLOCK_START, DAY, DEFAULT_TEST_POLICY, SECOND, familyStoreContract, redisAnnouncementProbe, type StoreFactoryInput } from './family-store-contract.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

function prefix(): string {
  return `t${randomBytes(4).toString('hex')}:`
}

async function redisStore(
  input: StoreFactoryInput,
  opts: { keyPrefix?: string; connection?: Partial<RedisConnectionOptions> } = {},
): Promise<RedisFamilyStore> {
  const redis = createRedis({ url: server.url, commandTimeoutMs: 2000, ...opts.connection })
  await waitForRedis(redis)
  return new RedisFamilyStore({ redis, ...input, keyPrefix: opts.keyPrefix ?? prefix() })
}

function fixture(policy: FamilyPolicy = DEFAULT_TEST_POLICY): StoreFactoryInput & { manual: ManualClock } {
  const manual = new ManualClock(CLOCK_START)
  return { manual, clock: manual.now, policy, codec: new RefreshTokenCodec(randomBytes(32)) }
}

async function commandCalls(client: RespClient): Promise<Map<string, number>> {
  const info = parseInfo(await client.call('INFO', 'commandstats'))
  const calls = new Map<string, number>()
  for (const [k, v] of Object.entries(info)) {
    const m = /^cmdstat_(.+)$/.exec(k)
    const n = /calls=(\d+)/.exec(v)
    if (m?.[1] && n?.[1]) calls.set(m[1], Number(n[1]))
  }
  return calls
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [cmd, n] of after) {
    const d = n - (before.get(cmd) ?? 0)
    if (d !== 0) out[cmd] = d
  }
  return out
}

function num(v: RespValue): number {
  if (typeof v !== 'number') throw new Error(`expected an integer reply, got ${String(v)}`)
  return v
}

const user = { clientId: 'web-app', scope: 'openid', authTime: 1_700_000_000 }

t.test('contract (standalone)', async (t) => {
  const probe = createRedis({ url: server.url })
  await waitForRedis(probe)
  t.teardown(() => probe.disconnect())
  familyStoreContract(t, async (input) => await redisStore(input), redisAnnouncementProbe(probe))
})

t.test('a rotation is exactly one Redis command (EVALSHA)', async (t) => {
  const f = fixture()
  const connectionName = `rotation-count-${randomBytes(4).toString('hex')}`
  const store = await redisStore(f, { connection: { connectionName } })
  t.teardown(() => store.close())
  const { refreshToken } = await store.create({ ...user, userId: 'u1' })
  // The first script call on a connection is sent as EVAL (it loads the script); then EVALSHA.
  let token = await rotated(store, refreshToken)

  // The store's connection, by its address in CLIENT LIST.
  const clients = String(await admin.call('CLIENT', 'LIST'))
  const addr = /(?:^|\s)addr=(\S+)[^\n]*\sname=(\S+)/gm
  const storeAddr = [...clients.matchAll(addr)].find((m) => m[2] === connectionName)?.[1]
  t.ok(storeAddr, `the store's connection is ${storeAddr}`)

  // Commands run by a script appear in MONITOR as `[0 lua]` (and count in commandstats too), so
  // what the store sends is what MONITOR shows from its address.
  const monitor = await monitorRedis(server.port)
  t.teardown(() => monitor.close())
  const storeCommands = async (): Promise<string[]> => {
    const marker = `marker-${randomBytes(4).toString('hex')}`
    await admin.call('ECHO', marker)
    await monitor.waitFor((c) => c.args[1] === marker)
    return monitor.commands.splice(0).filter((c) => c.source === storeAddr).map((c) => c.args[0] ?? '')
  }

  const before = await commandCalls(admin)
  await storeCommands()
  for (let i = 0; i < 10; i++) token = await rotated(store, token)
  t.same(await storeCommands(), Array(10).fill('evalsha'), '10 rotations: 10 EVALSHA sent, nothing else')
  const after = await commandCalls(admin)
  t.equal(delta(before, after).evalsha, 10, 'commandstats agrees: 10 EVALSHA')

  const parsed = f.codec.parse(token)
  if (parsed === null) throw new Error('unparseable')
  const spent = f.codec.mint(parsed.familyId, parsed.generation - 1)
  t.match(await store.rotate(spent, { clientId: 'web-app' }), { status: 'retried' })
  t.match(await store.rotate(`${parsed.familyId}.0.${'A'.repeat(43)}`, { clientId: 'web-app' }), { status: 'not_found' })
  f.manual.advance(DEFAULT_TEST_POLICY.reuseGraceMs + 1)
  t.match(await store.rotate(spent, { clientId: 'web-app' }), { status: 'reused' })
  t.match(await store.rotate(token, { clientId: 'web-app' }), { status: 'revoked' })
  t.same(await storeCommands(), ['evalsha', 'evalsha', 'evalsha'], 'retry, reuse, revoked: one each; a forged token: none')
})

t.test('falls back to EVAL when the server lost the script (NOSCRIPT)', async (t) => {
  const f = fixture()
  const store = await redisStore(f)
  t.teardown(() => store.close())
  const { refreshToken } = await store.create({ ...user, userId: 'u1' })
  const t1 = await rotated(store, refreshToken)
  t.equal(await admin.call('SCRIPT', 'FLUSH'), 'OK')
  const t2 = await rotated(store, t1)
  t.ok(t2, 'rotates after SCRIPT FLUSH')
  await rotated(store, t2)
})

t.test('keys: named by store/key-names.ts, with TTLs bounded by the family life', async (t) => {
  const f = fixture()
  const keyPrefix = prefix()
  const keys = familyKeys(keyPrefix)
  const store = await redisStore(f, { keyPrefix })
  t.teardown(() => store.close())
  const { family, refreshToken } = await store.create({ ...user, userId: 'alice', sessionId: 'sess-1' })
  const famKey = `${keyPrefix}fam:{${family.id}}`
  t.equal(keys.family(family.id), famKey)
  const all = (await admin.call('KEYS', `${keyPrefix}*`)) as string[]
  t.same([...all].sort(), [famKey, `${keyPrefix}sess-fams:sess-1`, `${keyPrefix}user-fams:alice`].sort(), 'one key per family, two index sets')

  const { idleTtlMs, absoluteTtlMs } = DEFAULT_TEST_POLICY
  const within = (ms: number, expected: number, what: string): void => {
    t.ok(ms <= expected && ms > expected - 5 * SECOND, `${what}: PTTL ${ms} ~ ${expected}`)
  }
  within(num(await admin.call('PTTL', famKey)), idleTtlMs, 'new family (idle < absolute)')
  within(num(await admin.call('PTTL', keys.userFamilies('alice'))), absoluteTtlMs, 'user index')
  within(num(await admin.call('PTTL', keys.sessionFamilies('sess-1'))), absoluteTtlMs, 'session index')

  // Use the family every 5 days; near the end the absolute expiry, not the idle one, bounds the TTL.
  let token = refreshToken
  for (let day = 5; day <= 25; day += 5) {
    f.manual.advance(5 * DAY)
    token = await rotated(store, token)
    const remaining = Math.min(family.expiresAt - f.manual.now(), idleTtlMs)
    within(num(await admin.call('PTTL', famKey)), remaining, `after a rotation on day ${day}`)
  }
  const beforeReuse = num(await admin.call('PTTL', famKey))
  f.manual.advance(DEFAULT_TEST_POLICY.reuseGraceMs + 1)
  t.match(await store.rotate(refreshToken, { clientId: 'web-app' }), { status: 'reused' })
  const afterReuse = num(await admin.call('PTTL', famKey))
  t.ok(afterReuse > 0 && afterReuse <= beforeReuse, 'a revoked family keeps its key (and TTL) to answer "revoked"')
  t.match(await store.rotate(token, { clientId: 'web-app' }), { status: 'revoked' })
})

t.test('memory per family does not grow with rotations', async (t) => {
  const f = fixture()
  const keyPrefix = prefix()
  const store = await redisStore(f, { keyPrefix })
  t.teardown(() => store.close())
  const { family, refreshToken } = await store.create({ ...user, userId: 'u1', sessionId: 's1' })
  const famKey = familyKeys(keyPrefix).family(family.id)
  let token = await rotated(store, refreshToken)
  const after1 = num(await admin.call('MEMORY', 'USAGE', famKey))
  const keysAfter1 = ((await admin.call('KEYS', `${keyPrefix}*`)) as string[]).length
  for (let i = 0; i < 99; i++) {
    f.manual.advance(SECOND)
    token = await rotated(store, token)
  }
  t.equal(f.codec.parse(token)?.generation, 100)
  t.equal(num(await admin.call('MEMORY', 'USAGE', famKey)), after1, `MEMORY USAGE after 1 and after 100 rotations: ${after1} bytes`)
  t.equal(((await admin.call('KEYS', `${keyPrefix}*`)) as string[]).length, keysAfter1, 'no key added by rotations')
})

t.test('20 rotations from 20 connections at once never fork the family', async (t) => {
  const f = fixture()
  const keyPrefix = prefix()
  const stores = await Promise.all(Array.from({ length: 20 }, () => redisStore(f, { keyPrefix })))
  t.teardown(() => Promise.all(stores.map((s) => s.close())))
  const { refreshToken } = await stores[0]!.create({ ...user, userId: 'u1' })
  const outs = await Promise.all(stores.map((s) => s.rotate(refreshToken, { clientId: 'web-app' })))
  t.equal(outs.filter((o) => o.status === 'rotated').length, 1)
  t.equal(outs.filter((o) => o.status === 'retried').length, 19)
  t.equal(new Set(outs.map((o) => ('refreshToken' in o ? o.refreshToken : ''))).size, 1, 'one successor')
})

t.test('a Redis error is StoreUnavailable', async (t) => {
  const f = fixture()
  const keyPrefix = prefix()
  const store = await redisStore(f, { keyPrefix })
  t.teardown(() => store.close())
  const { family, refreshToken } = await store.create({ ...user, userId: 'u1' })
  await admin.call('SET', familyKeys(keyPrefix).family(family.id), 'not a hash')
  await t.rejects(store.rotate(refreshToken, { clientId: 'web-app' }), StoreUnavailable)
  await t.rejects(store.get(family.id), StoreUnavailable)
})

t.test('a stopped Redis fails fast with StoreUnavailable; the client reconnects by itself', async (t) => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const f = fixture()
  const commandTimeoutMs = 500
  const redis = createRedis({ url: own.url, commandTimeoutMs })
  await waitForRedis(redis)
  const store = new RedisFamilyStore({ redis, ...f })
  t.teardown(() => store.close())
  const { family, refreshToken } = await store.create({ ...user, userId: 'u1', sessionId: 's1' })

  await own.stop()
  const bound = commandTimeoutMs + 1000
  const ops: Array<[string, () => Promise<unknown>]> = [
    ['rotate', () => store.rotate(refreshToken, { clientId: 'web-app' })],
    ['create', () => store.create({ ...user, userId: 'u2' })],
    ['get', () => store.get(family.id)],
    ['lookup', () => store.lookup(refreshToken)],
    ['revoke', () => store.revoke(family.id, 'admin')],
    ['revokeBySession', () => store.revokeBySession('s1', 'logout')],
    ['revokeByUser', () => store.revokeByUser('u1', 'logout')],
    ['listByUser', () => store.listByUser('u1')],
    ['ping', () => store.ping()],
  ]
  for (const [name, op] of ops) {
    const start = performance.now()
    await t.rejects(op(), StoreUnavailable, `${name} rejects with StoreUnavailable`)
    const elapsed = performance.now() - start
    t.ok(elapsed < bound, `${name} failed in ${Math.round(elapsed)} ms (< ${bound})`)
  }

  await own.restart() // same port, empty (no persistence)
  const deadline = Date.now() + 15_000
  for (;;) {
    try {
      await store.ping()
      break
    } catch (err) {
      if (!(err instanceof StoreUnavailable) || Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  t.pass('reconnected without help')
  const again = await store.create({ ...user, userId: 'u1' })
  await rotated(store, again.refreshToken)
})

t.test('a hung Redis fails within commandTimeoutMs; a retry then gets the same successor', async (t) => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const f = fixture()
  const commandTimeoutMs = 300
  const redis = createRedis({ url: own.url, commandTimeoutMs })
  await waitForRedis(redis)
  const store = new RedisFamilyStore({ redis, ...f })
  t.teardown(() => store.close())
  const { refreshToken } = await store.create({ ...user, userId: 'u1' })

  own.pause()
  const start = performance.now()
  await t.rejects(store.rotate(refreshToken, { clientId: 'web-app' }), StoreUnavailable)
  const elapsed = performance.now() - start
  t.ok(elapsed >= commandTimeoutMs - 50 && elapsed < commandTimeoutMs + 1000, `timed out after ${Math.round(elapsed)} ms`)
  own.resume()

  // The server ran the rotation once it thawed; the client never saw the answer. Presenting the
  // same token again (within the grace window) is a retry and yields the successor it missed.
  const again = await store.rotate(refreshToken, { clientId: 'web-app' })
  t.match(again, { status: 'retried', family: { generation: 1 } })
  if (again.status === 'retried') await rotated(store, again.refreshToken)
})

t.test('createRedis', async (t) => {
  t.throws(() => createRedis({}), /exactly one of url, clusterNodes, sentinels/)
  t.throws(() => createRedis({ url: 'http://x' }), /url must start with redis/)
  t.throws(() => createRedis({ sentinels: [{ host: 'h', port: 1 }] }), /sentinelName is required/)
  t.throws(() => createRedis({ clusterNodes: [] }), /clusterNodes must be a non-empty list/)
  t.throws(() => createRedis({ url: server.url, commandTimeoutMs: 0 }), /commandTimeoutMs/)

  // Nothing listens there: commands fail at once (no offline queue), errors go to the listener.
  const errors: Error[] = []
  const port = await freePort()
  const redis = createRedis({ url: `redis://127.0.0.1:${port}`, onError: (e) => errors.push(e) })
  t.teardown(() => redis.disconnect())
  t.ok(redis.listenerCount('error') >= 1, 'an error listener is attached')
  const store = new RedisFamilyStore({ redis, ...fixture() })
  const start = performance.now()
  await t.rejects(store.ping(), StoreUnavailable)
  t.ok(performance.now() - start < 1000, 'ping fails fast')
  await t.rejects(waitForRedis(redis, 200), StoreUnavailable)
  t.ok(errors.length >= 1, 'connection errors reach onError, not an unhandled event')
  const closing = performance.now()
  await store.close()
  t.ok(performance.now() - closing < 1000, 'close() does not wait for a server that is not there')
  t.not(redis.status, 'ready')
})

t.test('key names', async (t) => {
  t.equal(familyKeys().family('abc'), `${DEFAULT_KEY_PREFIX}fam:{abc}`)
  t.equal(familyKeys().userFamilies('u'), 'gatehouse:user-fams:u')
  t.equal(familyKeys().sessionFamilies('s'), 'gatehouse:sess-fams:s')
  t.throws(() => familyKeys('bad{prefix}:'), /keyPrefix/)
  t.throws(() => familyKeys().family('a}b'), /family id/)
})

t.test('close() quits a connection the store owns and leaves a shared one open', async (t) => {
  const f = fixture()
  const own = createRedis({ url: server.url })
  await waitForRedis(own)
  const owned = new RedisFamilyStore({ ...f, redis: own, keyPrefix: prefix() })
  await owned.ping()
  const ended = once(own, 'end')
  await owned.close()
  await ended
  t.equal(own.status, 'end', 'owned (the default): quit')

  const client = createRedis({ url: server.url })
  await waitForRedis(client)
  const shared = new RedisFamilyStore({ ...f, redis: client, ownsConnection: false, keyPrefix: prefix() })
  await shared.ping()
  await shared.close()
  t.equal(client.status, 'ready', 'a client passed in is left open')
  await client.quit()
})

async function rotated(store: FamilyStore, token: string): Promise<string> {
  const out = await store.rotate(token, { clientId: 'web-app' })
  if (out.status !== 'rotated') throw new Error(`expected rotated, got ${out.status}`)
  return out.refreshToken
}

t.test("issue 20: the grace window on Redis's clock, so a rotation that ran late cannot turn the client's retry into reuse", async (t) => {
  // The caller's clock moves past the window between the rotation and the retry, as it does when
  // the rotation's command waited in a frozen Redis and ran on resume: measured on the caller's
  // clock that is reuse (the defect); measured on Redis's clock at execution it is a retry.
  const outcomes: Record<string, string[]> = {}
  for (const graceClock of ['caller', 'redis'] as const) {
    const f = fixture()
    const redis = createRedis({ url: server.url, commandTimeoutMs: 2000 })
    await waitForRedis(redis)
    const store = new RedisFamilyStore({ redis, ...f, keyPrefix: prefix(), graceClock })
    t.teardown(() => store.close())
    const { refreshToken: t0 } = await store.create({ userId: 'u1', ...user })
    const t1 = await store.rotate(t0, { clientId: 'web-app' })
    f.manual.advance(DEFAULT_TEST_POLICY.reuseGraceMs + 5 * SECOND)
    const retry = await store.rotate(t0, { clientId: 'web-app' })
    outcomes[graceClock] = [t1.status, retry.status]
    if (graceClock === 'redis' && retry.status === 'retried' && t1.status === 'rotated') {
      t.equal(retry.refreshToken, t1.refreshToken, 'the retry gets the same successor')
      const t2 = await store.rotate(t1.refreshToken, { clientId: 'web-app' })
      t.equal(t2.status, 'rotated')
      t.match(await store.rotate(t0, { clientId: 'web-app' }), { status: 'reused' }, 'two generations back is still reuse')
    }
  }
  t.same(outcomes, { caller: ['rotated', 'reused'], redis: ['rotated', 'retried'] })
})

t.test('the grace clock: redis on the real clock, the caller with an injected one; anything else is refused', async (t) => {
  const redis = createRedis({ url: server.url })
  t.teardown(() => redis.disconnect())
  const codec = new RefreshTokenCodec(randomBytes(32))
  t.throws(() => new RedisFamilyStore({ redis, codec, policy: DEFAULT_TEST_POLICY, ownsConnection: false, graceClock: 'server' as 'redis' }), /graceClock/)
  t.throws(() => new RedisFamilyStore({ redis, codec, policy: DEFAULT_TEST_POLICY, ownsConnection: false, accessTokenTtlS: 0 }), /accessTokenTtlS/)
})
