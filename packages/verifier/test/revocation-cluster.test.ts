import { RECENT_REVOCATIONS_KEY, REVOCATION_CHANNEL, encodeRevocation } from '@gatehouse/service-kit'
import t from 'tap'
import { createVerifier } from '../src/index.js'
import { AUDIENCE, makeKey, startFakeIssuer, startRedisCluster, token, waitFor } from '@gatehouse/test-harness'

/**
 * DESIGN §6 on a Redis Cluster (issue 21): the verifier's `redis` names a node that does not hold
 * the recent-revocations set. Messages reach it (classic PUBLISH goes to every node); the catch-up
 * read is answered MOVED and follows it to the node that holds the set, so a revocation from
 * before start is enforced and the feed is live.
 */

const key = await makeKey('key-1')
const issuer = await startFakeIssuer({ keys: [key] })
const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 })
t.teardown(async () => {
  await issuer.close()
  await cluster.stop()
})

const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const sign = (sid: string): string => token({ key, issuer: issuer.issuer, now: nowSeconds(), claims: { sid } })

t.test('a verifier subscribed through another node catches up from the node that holds the recent set', async (t) => {
  const masters = await cluster.masters()
  const admin = await cluster.client(masters[0]!)
  t.teardown(() => admin.close())
  const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', RECENT_REVOCATIONS_KEY))
  const slots = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
  const holder = Number(slots.find(([from, to]) => slot >= from && slot <= to)?.[2][1])
  const others = masters.filter((p) => p !== holder)
  t.equal(others.length, 2, 'two masters do not hold the recent set')

  const writer = await cluster.client(holder)
  t.teardown(() => writer.close())
  await writer.call('ZADD', RECENT_REVOCATIONS_KEY, nowSeconds() + 900, 'family-before')

  const v = createVerifier({ issuer: issuer.issuer, jwksUri: issuer.jwksUri, audience: AUDIENCE, redis: `redis://127.0.0.1:${others[0]!}` })
  t.teardown(() => v.close())
  const synced = waitFor<number>((resolve) => v.events.once('revocations-synced', resolve), 10_000, 'the first sync')
  await v.ready()
  t.equal(await synced, 1, 'the recent set was read (through the MOVED redirection)')
  t.equal(v.revocationFeedStatus(), 'live')
  await t.rejects(v.verify(sign('family-before')), { code: 'invalid_token', detail: 'revoked' }, 'a revocation from before start is enforced')

  // Live: published on the third master, delivered through the node the verifier subscribed to.
  const publisher = await cluster.client(others[1]!)
  t.teardown(() => publisher.close())
  const live = waitFor<unknown>((resolve) => v.events.on('revoked', (e) => e.sid === 'family-live' && resolve(e)), 5000, 'the live event')
  await publisher.call('PUBLISH', REVOCATION_CHANNEL, encodeRevocation({ sid: 'family-live', exp: nowSeconds() + 60 }))
  await live
  await t.rejects(v.verify(sign('family-live')), { code: 'invalid_token', detail: 'revoked' })
})
