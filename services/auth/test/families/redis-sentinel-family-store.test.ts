/**
 * The FamilyStore contract against Redis Sentinel (issue 6): the same conformance suite as memory,
 * standalone and Cluster, through ioredis's Sentinel client (REDIS_SENTINELS), then a failover:
 * the master dies, the sentinels promote the replica, the client follows by itself and the family
 * carries on where it was.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startRedisSentinel, ManualClock } from '@gatehouse/test-harness'
import { RedisFamilyStore } from '../../src/families/redis-family-store.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { RefreshTokenCodec } from '../../src/families/refresh-token-codec.js'
import { type FamilyStore, type RotateOutcome } from '../../src/families/types.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { CLOCK_START, DEFAULT_TEST_POLICY, familyStoreContract, redisAnnouncementProbe, type StoreFactoryInput } from './family-store-contract.js'

const sentinel = await startRedisSentinel()
t.teardown(() => sentinel.stop())

async function sentinelStore(input: StoreFactoryInput): Promise<RedisFamilyStore> {
  const redis = createRedis({ sentinels: sentinel.sentinels, sentinelName: sentinel.name, commandTimeoutMs: 2000 })
  await waitForRedis(redis, 10_000)
  return new RedisFamilyStore({ redis, ...input, keyPrefix: `t${randomBytes(4).toString('hex')}:` })
}

t.test('contract (Sentinel: master, replica, 3 sentinels)', async (t) => {
  const probe = createRedis({ sentinels: sentinel.sentinels, sentinelName: sentinel.name })
  await waitForRedis(probe, 10_000)
  t.teardown(() => probe.disconnect())
  familyStoreContract(t, async (input) => await sentinelStore(input), redisAnnouncementProbe(probe))
})

t.test('the master dies: bounded errors, then the promoted replica serves the family', async (t) => {
  const manual = new ManualClock(CLOCK_START)
  const store: FamilyStore = await sentinelStore({ clock: manual.now, policy: DEFAULT_TEST_POLICY, codec: new RefreshTokenCodec(randomBytes(32)) })
  t.teardown(() => store.close())
  const user = { userId: 'u1', clientId: 'web-app', scope: 'openid', authTime: 1_700_000_000 }
  const { family, refreshToken } = await store.create(user)
  const first = await store.rotate(refreshToken, { clientId: 'web-app' })
  if (first.status !== 'rotated') throw new Error(`expected rotated, got ${first.status}`)

  // Replication is asynchronous: wait until the replica holds generation 1 before the crash.
  const before = await sentinel.masterPort()
  const replica = sentinel.nodes.find((n) => n.port !== before)!.port
  const deadline = Date.now() + 5000
  for (;;) {
    const c = await sentinel.client(replica)
    const keys = (await c.call('KEYS', '*')) as string[]
    const gens = await Promise.all(keys.map((k) => c.call('HGET', k, 'generation').catch(() => null)))
    await c.close()
    if (gens.includes('1')) break
    if (Date.now() > deadline) throw new Error('the family never reached the replica')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }

  await sentinel.killMaster()
  t.equal(await sentinel.masterPort(), replica, 'the sentinels promoted the replica')

  let out: RotateOutcome | undefined
  let failures = 0
  const until = Date.now() + 15_000
  while (out === undefined) {
    const start = performance.now()
    try {
      out = await store.rotate(first.refreshToken, { clientId: 'web-app' })
    } catch (err) {
      failures++
      t.ok(err instanceof StoreUnavailable, 'a failure is StoreUnavailable')
      t.ok(performance.now() - start < 5000, 'and bounded in time')
      if (Date.now() > until) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.comment(`${failures} failed attempts while the client followed the failover`)
  t.match(out, { status: 'rotated', family: { id: family.id, generation: 2 } }, 'the family survived the failover')
})
