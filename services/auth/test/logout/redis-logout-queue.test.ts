import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { RedisLogoutQueue } from '../../src/logout/redis-logout-queue.js'
import { logoutQueueKeys } from '../../src/store/key-names.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { logoutQueueContract, redisQueueFactory } from './logout-queue-contract.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

async function connect() {
  const redis = createRedis({ url: server.url, commandTimeoutMs: 2000 })
  await waitForRedis(redis)
  return redis
}

t.test('contract (standalone)', async (t) => {
  logoutQueueContract(t, redisQueueFactory(connect))
})

t.test('keys: one hash tag, both with a TTL', async (t) => {
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`
  const redis = await connect()
  t.teardown(() => redis.disconnect())
  const queue = new RedisLogoutQueue({ redis, keyPrefix, ttlMs: 60_000 })
  await queue.enqueue({ clientId: 'web', sid: 's', sub: 'u' }, 0)
  const keys = logoutQueueKeys(keyPrefix)
  t.same(keys, { due: `${keyPrefix}bcl:{queue}:due`, jobs: `${keyPrefix}bcl:{queue}:jobs` })
  t.same(((await admin.call('KEYS', `${keyPrefix}*`)) as string[]).sort(), [keys.due, keys.jobs].sort())
  for (const k of [keys.due, keys.jobs]) {
    const ttl = Number(await admin.call('PTTL', k))
    t.ok(ttl > 50_000 && ttl <= 60_000, `${k} expires (PTTL ${ttl})`)
  }
  t.throws(() => logoutQueueKeys('a{b}:'), /keyPrefix/)
})

t.test('the job at rest holds identifiers only', async (t) => {
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`
  const redis = await connect()
  t.teardown(() => redis.disconnect())
  const queue = new RedisLogoutQueue({ redis, keyPrefix, clock: () => 5 })
  await queue.enqueue({ clientId: 'web', sid: 's', sub: 'u' }, 0)
  const stored = (await admin.call('HGETALL', logoutQueueKeys(keyPrefix).jobs)) as string[]
  t.same(Object.keys(JSON.parse(stored[1]!) as object).sort(), ['attempts', 'clientId', 'createdAt', 'id', 'lease', 'sid', 'sub'])
})
