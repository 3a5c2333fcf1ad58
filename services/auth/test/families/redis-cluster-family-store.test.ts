import { randomBytes } from 'node:crypto'
import t from 'tap'
import { parseInfo, startRedisCluster, type RespClient, ManualClock } from '@gatehouse/test-harness'
import { familyKeys } from '../../src/store/key-names.js'
import { RedisFamilyStore } from '../../src/families/redis-family-store.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { RefreshTokenCodec } from '../../src/families/refresh-token-codec.js'
import { type FamilyStore } from '../../src/families/types.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { CLOCK_START, DEFAULT_TEST_POLICY, familyStoreContract, redisAnnouncementProbe, type StoreFactoryInput } from './family-store-contract.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())

function prefix(): string {
  return `t${randomBytes(4).toString('hex')}:`
}

async function clusterStore(input: StoreFactoryInput, keyPrefix = prefix()): Promise<RedisFamilyStore> {
  const redis = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000 })
  await waitForRedis(redis, 10_000)
  return new RedisFamilyStore({ redis, ...input, keyPrefix })
}

function fixture(): StoreFactoryInput & { manual: ManualClock } {
  const manual = new ManualClock(CLOCK_START)
  return { manual, clock: manual.now, policy: DEFAULT_TEST_POLICY, codec: new RefreshTokenCodec(randomBytes(32)) }
}

async function withNode<T>(port: number, fn: (c: RespClient) => Promise<T>): Promise<T> {
  const c = await cluster.client(port)
  try {
    return await fn(c)
  } finally {
    await c.close()
  }
}

/** The master port serving a key, asked of the cluster (CLUSTER KEYSLOT + CLUSTER SHARDS-free: SLOTS). */
async function masterOf(key: string): Promise<number> {
  const [first] = await cluster.masters()
  if (first === undefined) throw new Error('no master')
  return await withNode(first, async (c) => {
    const slot = Number(await c.call('CLUSTER', 'KEYSLOT', key))
    const ranges = (await c.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]]]>
    const range = ranges.find(([lo, hi]) => slot >= lo && slot <= hi)
    if (range === undefined) throw new Error(`slot ${slot} unserved`)
    return Number(range[2][1])
  })
}

async function evalshaCalls(ports: number[]): Promise<number> {
  let total = 0
  for (const port of ports) {
    const info = parseInfo(await withNode(port, (c) => c.call('INFO', 'commandstats')))
    total += Number(/calls=(\d+)/.exec(info.cmdstat_evalsha ?? '')?.[1] ?? 0)
  }
  return total
}

async function rotated(store: FamilyStore, token: string): Promise<string> {
  const out = await store.rotate(token, { clientId: 'web-app' })
  if (out.status !== 'rotated') throw new Error(`expected rotated, got ${out.status}`)
  return out.refreshToken
}

const user = { clientId: 'web-app', scope: 'openid', authTime: 1_700_000_000 }

t.test('contract (cluster: 3 masters, 3 replicas)', async (t) => {
  const probe = createRedis({ clusterNodes: cluster.nodes })
  await waitForRedis(probe, 10_000)
  t.teardown(() => probe.disconnect())
  // The recent set is written after the script (another slot), through the store's outbox.
  familyStoreContract(t, async (input) => await clusterStore(input), redisAnnouncementProbe(probe, 3000))
})

t.test('families spread over the masters; each rotation is one EVALSHA on its master', async (t) => {
  const f = fixture()
  const keyPrefix = prefix()
  const keys = familyKeys(keyPrefix)
  const store = await clusterStore(f, keyPrefix)
  t.teardown(() => store.close())
  const families = await Promise.all(
    Array.from({ length: 12 }, (_, i) => store.create({ ...user, userId: `u${i % 3}`, sessionId: `s${i}` })),
  )
  const owners = await Promise.all(families.map((x) => masterOf(keys.family(x.family.id))))
  t.ok(new Set(owners).size >= 2, `family keys live on ${new Set(owners).size} masters`)

  // Warm up: the first script call on each node connection is an EVAL that loads the script.
  const tokens = await Promise.all(families.map((x) => rotated(store, x.refreshToken)))
  const masters = await cluster.masters()
  const before = await evalshaCalls(masters)
  const next = await Promise.all(tokens.map((tok) => rotated(store, tok)))
  t.equal((await evalshaCalls(masters)) - before, families.length, 'one EVALSHA per rotation across the masters')
  t.equal(next.length, 12)

  const revoked = await store.revokeByUser('u0', 'logout')
  t.equal(revoked.length, 4, 'the per-user index lives in its own slot and still finds every family')
})

t.test('a master failure: bounded errors, then the promoted replica serves the family', async (t) => {
  const f = fixture()
  const keyPrefix = prefix()
  const keys = familyKeys(keyPrefix)
  const store = await clusterStore(f, keyPrefix)
  t.teardown(() => store.close())
  const { family, refreshToken } = await store.create({ ...user, userId: 'u1' })
  const token = await rotated(store, refreshToken)
  const key = keys.family(family.id)
  const master = await masterOf(key)

  // Replication is asynchronous: wait until a replica holds generation 1 before the crash.
  const replicas = cluster.nodes.map((n) => n.port).filter((p) => p !== master)
  const deadline = Date.now() + 5000
  for (;;) {
    const held = await Promise.all(
      replicas.map((p) => withNode(p, async (c) => {
        await c.call('READONLY')
        return await c.call('HGET', key, 'generation').catch(() => null)
      })),
    )
    if (held.includes('1')) break
    if (Date.now() > deadline) throw new Error('the family never reached a replica')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }

  await cluster.killMaster(master)
  t.not((await masterOf(key)), master, 'a replica took over the slot')

  // The client learns the new topology by itself; until then each attempt fails fast.
  let out: Awaited<ReturnType<FamilyStore['rotate']>> | undefined
  const until = Date.now() + 15_000
  while (out === undefined) {
    const start = performance.now()
    try {
      out = await store.rotate(token, { clientId: 'web-app' })
    } catch (err) {
      t.ok(err instanceof StoreUnavailable, 'a failure is StoreUnavailable')
      t.ok(performance.now() - start < 5000, 'and bounded in time')
      if (Date.now() > until) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.match(out, { status: 'rotated', family: { id: family.id, generation: 2 } }, 'the family survived the failover')
})
