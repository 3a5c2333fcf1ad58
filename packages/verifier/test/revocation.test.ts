import { RECENT_REVOCATIONS_KEY, REVOCATION_CHANNEL, encodeRevocation } from '@gatehouse/service-kit'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { createVerifier, type Verifier, type VerifierOptions } from '../src/index.js'
import { AUDIENCE, makeKey, startFakeIssuer, token, waitFor, startProxy, startRedis } from '@gatehouse/test-harness'

/** DESIGN §6 against a private redis-server: the feed, the catch-up read, reconnects. */

const key = await makeKey('key-1')
const issuer = await startFakeIssuer({ keys: [key] })
const redis = await startRedis()
t.teardown(async () => {
  await issuer.close()
  await redis.stop()
})

const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const sign = (sid: string): string => token({ key, issuer: issuer.issuer, now: nowSeconds(), claims: { sid } })

function client(t: Test): Redis {
  const c = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 })
  c.on('error', () => {})
  t.teardown(() => c.disconnect())
  return c
}

async function started(t: Test, redisOption: VerifierOptions['redis']): Promise<Verifier> {
  const v = createVerifier({ issuer: issuer.issuer, jwksUri: issuer.jwksUri, audience: AUDIENCE, redis: redisOption })
  t.teardown(() => v.close())
  const synced = waitFor<number>((resolve) => v.events.once('revocations-synced', resolve), 5000, 'the first sync')
  await v.ready()
  await synced
  t.equal(v.revocationFeedStatus(), 'live')
  return v
}

t.test('a published revocation is enforced within 1 s, and evicts the cached token', async (t) => {
  const v = await started(t, redis.url)
  const doomed = sign('family-live')
  const bystander = sign('family-other')
  await v.verify(doomed)
  await v.verify(bystander)
  t.equal(v.stats().cachedTokens, 2)
  const revoked = waitFor<unknown>((resolve) => v.events.on('revoked', (e) => e.sid === 'family-live' && resolve(e)), 1000, 'the revocation (1 s)')
  await client(t).publish(REVOCATION_CHANNEL, encodeRevocation({ sid: 'family-live', exp: nowSeconds() + 900 }))
  await revoked
  t.equal(v.stats().cachedTokens, 1, 'evicted from the verified-token cache')
  await t.rejects(v.verify(doomed), { code: 'invalid_token', statusCode: 401, detail: 'revoked' })
  t.ok(await v.verify(bystander), 'other families are untouched')
  const fresh = sign('family-live')
  await t.rejects(v.verify(fresh), { code: 'invalid_token', detail: 'revoked' }, 'a new access token of the family too')
})

t.test('malformed messages are ignored', async (t) => {
  const v = await started(t, redis.url)
  const pub = client(t)
  const ok = waitFor<unknown>((resolve) => v.events.on('revoked', (e) => e.sid === 'family-after-garbage' && resolve(e)), 2000, 'the good event')
  for (const junk of ['not json', '{}', '{"sid":"","exp":1}', '{"sid":"x","exp":"soon"}', '[]', 'null']) await pub.publish(REVOCATION_CHANNEL, junk)
  await pub.publish(REVOCATION_CHANNEL, encodeRevocation({ sid: 'family-after-garbage', exp: nowSeconds() + 60 }))
  await ok
  t.equal(v.stats().deniedSids, 1)
})

t.test('on connect the recent set is read: a revocation from before start is enforced', async (t) => {
  await client(t).zadd(RECENT_REVOCATIONS_KEY, nowSeconds() + 900, 'family-before', nowSeconds() - 10, 'family-long-gone')
  const v = await started(t, redis.url)
  await t.rejects(v.verify(sign('family-before')), { code: 'invalid_token', detail: 'revoked' })
  t.ok(await v.verify(sign('family-long-gone')), 'an entry past its exp is not read')
})

t.test('still enforced after the subscriber reconnects: what was revoked while away is caught up', async (t) => {
  const proxy = await startProxy(redis.port)
  t.teardown(() => proxy.close())
  const v = await started(t, { host: '127.0.0.1', port: proxy.port, retryStrategy: () => 50 })
  const away = sign('family-while-away')
  await v.verify(away)

  // Redis goes away: the verifier keeps working on its own (tokens live until they expire).
  proxy.open = false
  await redis.stop()
  proxy.cut()
  t.ok(await v.verify(sign('family-unrelated')), 'verification does not depend on Redis')

  // Back, empty, on the same port. The family is revoked while we are disconnected:
  // nothing is published to us, only the recent set records it.
  await redis.restart()
  await client(t).zadd(RECENT_REVOCATIONS_KEY, nowSeconds() + 900, 'family-while-away')
  t.ok(await v.verify(away), 'not yet known')
  const resynced = waitFor<number>((resolve) => v.events.once('revocations-synced', resolve), 10_000, 'the resync')
  proxy.open = true
  t.ok((await resynced) >= 1)
  await t.rejects(v.verify(away), { code: 'invalid_token', detail: 'revoked' })
  t.equal(v.revocationFeedStatus(), 'live')

  // And the live channel works again after the reconnect.
  const live = waitFor<unknown>((resolve) => v.events.on('revoked', (e) => e.sid === 'family-after' && resolve(e)), 1000, 'live event')
  await client(t).publish(REVOCATION_CHANNEL, encodeRevocation({ sid: 'family-after', exp: nowSeconds() + 60 }))
  await live
})
