/**
 * The factor store on a 6-node Redis Cluster: every step touches one key (the user's hash under
 * its `{userId}` tag, or one passkey pointer), so nothing is refused with CROSSSLOT.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startRedisCluster } from '@gatehouse/test-harness'
import { RedisFactorStore } from '../../src/mfa/redis-factors.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { factorStoreContract } from './factor-store-contract.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())
const redis = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000 })
t.teardown(() => redis.disconnect())
await waitForRedis(redis, 10_000)

factorStoreContract(t, async () => ({ store: new RedisFactorStore({ redis, keyPrefix: `t${randomBytes(4).toString('hex')}:` }), addUser: async () => undefined }))
