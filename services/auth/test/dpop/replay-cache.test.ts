import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ManualClock } from '@gatehouse/test-harness'
import { MemoryDpopReplayCache, replayKey } from '@gatehouse/verifier'
import { RedisDpopReplayCache } from '../../src/dpop/redis-replay.js'
import { dpopProofKey } from '../../src/store/key-names.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { StoreUnavailable } from '../../src/store/types.js'
import { privateRedis } from '../helpers.js'
import { replayCacheContract } from './replay-cache-contract.js'

t.test('memory', async (t) => {
  replayCacheContract(t, async (clock) => {
    // One process: its replicas share nothing, so "two replicas" are the one cache.
    const cache = new MemoryDpopReplayCache(clock.now)
    return [cache, cache]
  })

  t.test('a proof is remembered until its expiry, then forgotten', async (t) => {
    const clock = new ManualClock()
    const cache = new MemoryDpopReplayCache(clock.now)
    const k = replayKey({ jkt: 'a', jti: 'b' })
    t.equal(cache.claim(k, clock.now() + 65_000), true)
    clock.advance(64_999)
    t.equal(cache.claim(k, clock.now() + 65_000), false)
    clock.advance(1)
    t.equal(cache.claim(k, clock.now() + 65_000), true, 'the proof is too old to pass anyway by then')
  })
})

t.test('Redis', async (t) => {
  const { server, admin } = await privateRedis(t)
  const prefix = `t${randomBytes(4).toString('hex')}:`
  const connection = async () => {
    const redis = createRedis({ url: server.url, commandTimeoutMs: 2000 })
    t.teardown(() => redis.disconnect())
    await waitForRedis(redis)
    return redis
  }
  replayCacheContract(t, async (clock) => [
    new RedisDpopReplayCache({ redis: await connection(), clock: clock.now, keyPrefix: prefix }),
    new RedisDpopReplayCache({ redis: await connection(), clock: clock.now, keyPrefix: prefix }),
  ])

  t.test('one SET NX PX per proof, under its key name, living until the expiry', async (t) => {
    const clock = new ManualClock()
    const cache = new RedisDpopReplayCache({ redis: await connection(), clock: clock.now, keyPrefix: prefix })
    const k = replayKey({ jkt: 'thumb', jti: 'id-1' })
    t.equal(await cache.claim(k, clock.now() + 65_000), true)
    t.equal(await admin.call('GET', dpopProofKey(k, prefix)), '1')
    const ttl = Number(await admin.call('PTTL', dpopProofKey(k, prefix)))
    t.ok(ttl > 60_000 && ttl <= 65_000, `PTTL ${ttl} is the proof's remaining life`)
    t.match(dpopProofKey(k, prefix), new RegExp(`^${prefix}dpop-jti:[A-Za-z0-9_-]{43}$`), 'no jti or key material in the name, only a digest')
  })

  t.test('Redis down: StoreUnavailable (503), never a silent accept', async (t) => {
    const redis = await connection()
    const cache = new RedisDpopReplayCache({ redis, keyPrefix: prefix })
    redis.disconnect()
    await t.rejects(cache.claim(replayKey({ jkt: 'x', jti: 'y' }), Date.now() + 65_000), StoreUnavailable)
  })
})
