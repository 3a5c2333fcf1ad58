import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startRedisCluster } from '@gatehouse/test-harness'
import { RedisLogoutQueue } from '../../src/logout/redis-logout-queue.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { logoutQueueContract } from './logout-queue-contract.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())

async function connect() {
  const redis = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000 })
  await waitForRedis(redis, 10_000)
  return redis
}

// Every script touches the two queue keys; without their shared hash tag Cluster answers CROSSSLOT.
t.test('contract (cluster: 3 masters, 3 replicas)', async (t) => {
  logoutQueueContract(t, async ({ clock, maxJobs }) => {
    const keyPrefix = `t${randomBytes(4).toString('hex')}:`
    const conns = [await connect()]
    const make = (redis: (typeof conns)[number]) => new RedisLogoutQueue({ redis, keyPrefix, clock, ...(maxJobs !== undefined ? { maxJobs } : {}) })
    return {
      queue: make(conns[0]!),
      twin: async () => {
        const redis = await connect()
        conns.push(redis)
        return make(redis)
      },
      close: async () => {
        for (const c of conns) c.disconnect()
      },
    }
  })
})
