/**
 * The device-code store on a 6-node Redis Cluster: every step touches one key (the request, or the
 * user code's pointer), so nothing is refused with CROSSSLOT, whichever slots the keys land in.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock, startRedisCluster } from '@gatehouse/test-harness'
import { RedisDeviceCodeStore } from '../../src/device/redis-device-codes.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { CLOCK_START, INTERVAL_S, TTL_MS, deviceCodeStoreContract } from './device-code-store-contract.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())
const redis = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000 })
t.teardown(() => redis.disconnect())
await waitForRedis(redis, 10_000)

deviceCodeStoreContract(t, async () => {
  const clock = new ManualClock(CLOCK_START)
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`
  return { clock, store: new RedisDeviceCodeStore({ redis, ttlMs: TTL_MS, intervalSeconds: INTERVAL_S, clock: clock.now, keyPrefix }) }
})
