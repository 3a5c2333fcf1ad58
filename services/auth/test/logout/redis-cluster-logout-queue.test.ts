import t from 'tap'
import { startRedisCluster } from '@gatehouse/test-harness'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { logoutQueueContract, redisQueueFactory } from './logout-queue-contract.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())

async function connect() {
  const redis = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000 })
  await waitForRedis(redis, 10_000)
  return redis
}

// Every script touches the two queue keys; without their shared hash tag Cluster answers CROSSSLOT.
t.test('contract (cluster: 3 masters, 3 replicas)', async (t) => {
  logoutQueueContract(t, redisQueueFactory(connect))
})
