import { randomUUID } from 'node:crypto'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { createVerifier, type FetchLike, type JwksFetchResult, type Verifier, type VerifierLogger, type VerifierOptions } from '../src/index.js'
import { AUDIENCE, makeKey, ManualClock, startFakeIssuer, token, unsigned, userClaims, waitFor, type FakeIssuer, type SigningKey } from '@gatehouse/test-harness'
import { outcome } from './helpers/outcome.js'

/** The JWKS cache rules of DESIGN §4. */

const keyA = await makeKey('key-a')
const keyB = await makeKey('key-b')

interface Setup {
  issuer: FakeIssuer
  v: Verifier
  clock: ManualClock
  sign: (key: SigningKey, claims?: Record<string, unknown>) => string
}

async function setup(t: Test, options: Partial<VerifierOptions> = {}, keys: SigningKey[] = [keyA], maxAge = 300): Promise<Setup> {
  const issuer = await startFakeIssuer({ keys, maxAge })
  const clock = new ManualClock(Date.now())
  const v = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now, cache: false, ...options })
  t.teardown(async () => {
    await v.close()
    await issuer.close().catch(() => {})
  })
  return { issuer, v, clock, sign: (key, claims) => token({ key, issuer: issuer.issuer, now: clock.seconds(), claims }) }
}

/** The next completed JWKS fetch, however it was started. */
function nextFetch(v: Verifier): Promise<JwksFetchResult> {
  return waitFor<JwksFetchResult>((resolve) => v.events.once('jwks-fetch', resolve), 10_000, 'a JWKS fetch')
}

t.test('keys are discovered from the issuer; ready only once loaded', async (t) => {
  const { issuer, v, sign } = await setup(t)
  t.equal(v.isReady(), false)
  await v.ready()
  t.equal(v.isReady(), true)
  t.equal(issuer.counts.discovery, 1)
  t.equal(issuer.counts.jwks, 1)
  t.equal(await outcome(v, sign(keyA)), 'accepted')
  t.equal(issuer.counts.jwks, 1, 'the cached key is used')
})

t.test('jwksUri overrides discovery', async (t) => {
  const issuer = await startFakeIssuer({ keys: [keyA] })
  t.teardown(() => issuer.close())
  const v = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, jwksUri: issuer.jwksUri })
  t.teardown(() => v.close())
  await v.ready()
  t.equal(issuer.counts.discovery, 0)
  t.equal(issuer.counts.jwks, 1)
})

t.test('a discovery document naming another issuer is refused', async (t) => {
  const issuer = await startFakeIssuer({ keys: [keyA], issuerOverride: 'https://evil.example' })
  t.teardown(() => issuer.close())
  const v = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE })
  t.teardown(() => v.close())
  const jwt = token({ key: keyA, issuer: issuer.issuer, now: Math.floor(Date.now() / 1000) })
  t.equal(await outcome(v, jwt), '503 temporarily_unavailable')
  t.equal(issuer.counts.jwks, 0)
  t.equal(v.isReady(), false)
})

t.test('kid flooding: 1,000 random kids cause at most the budgeted refetches', async (t) => {
  const { issuer, v, clock, sign } = await setup(t, { jwks: { earlyRefetches: 3, cooldownMs: 30_000 } })
  await v.ready()
  const flood = (): string =>
    unsigned({ alg: 'RS256', typ: 'at+jwt', kid: randomUUID() }, userClaims(issuer.issuer, clock.seconds()), 'AAAA')
  const results = new Map<string, number>()
  for (let i = 0; i < 1000; i++) {
    const r = await outcome(v, flood())
    results.set(r, (results.get(r) ?? 0) + 1)
  }
  t.same([...results], [['unknown_kid', 1000]], 'every one is invalid_token, none is a 503')
  t.equal(issuer.counts.jwks, 1 + 3, 'the initial load plus the early-refetch budget')
  const concurrent = await Promise.all(Array.from({ length: 1000 }, () => outcome(v, flood())))
  t.ok(concurrent.every((r) => r === 'unknown_kid'))
  t.equal(issuer.counts.jwks, 4, 'a concurrent flood adds nothing once the budget is spent')
  t.equal(await outcome(v, sign(keyA)), 'accepted', 'genuine tokens still verify')

  clock.advance(30_000)
  for (let i = 0; i < 100; i++) await outcome(v, flood())
  t.ok(issuer.counts.jwks <= 4 + 2, `after a cool-down: one refetch plus one refilled early refetch (${issuer.counts.jwks})`)
})

t.test('a returning issuer is trusted again within a second, though its outage spent the budget', async (t) => {
  // Issue 20, defect 5: the issuer goes away, every request with its new key spends the early
  // refetches and the cool-down on failures; when it answers again, its new key must verify at once.
  const { issuer, v, clock, sign } = await setup(t, { jwks: { earlyRefetches: 3, cooldownMs: 30_000 } })
  await v.ready()
  issuer.failWith = 503
  const flood = (): string =>
    unsigned({ alg: 'RS256', typ: 'at+jwt', kid: randomUUID() }, userClaims(issuer.issuer, clock.seconds()), 'AAAA')
  const before = issuer.counts.jwks
  for (let second = 0; second < 10; second++) {
    for (let i = 0; i < 100; i++) t.equal(await outcome(v, sign(keyB)), '503 temporarily_unavailable')
    for (let i = 0; i < 100; i++) await outcome(v, flood())
    clock.advance(1000)
  }
  const during = issuer.counts.jwks - before
  t.ok(during <= 10 + 3 + 1, `2,000 requests over a 10 s outage: at most one probe a second plus the budget (${during})`)
  t.equal(await outcome(v, sign(keyA)), 'accepted', 'the cached key kept verifying during the outage')

  issuer.failWith = undefined
  issuer.publish([keyA, keyB])
  clock.advance(1000)
  t.equal(await outcome(v, sign(keyB)), 'accepted', 'the new key verifies one probe interval after the issuer answers')

  const after = issuer.counts.jwks
  for (let i = 0; i < 1000; i++) t.equal(await outcome(v, flood()), 'unknown_kid')
  t.ok(issuer.counts.jwks - after <= 3, `with the issuer back, a flood costs the budget at most (${issuer.counts.jwks - after})`)
})

t.test('concurrent misses share one fetch; a new key is picked up without a restart', async (t) => {
  const { issuer, v, sign } = await setup(t)
  await v.ready()
  issuer.publish([keyA, keyB])
  const jwt = sign(keyB)
  const results = await Promise.all(Array.from({ length: 50 }, () => outcome(v, jwt)))
  t.ok(results.every((r) => r === 'accepted'))
  t.equal(issuer.counts.jwks, 2, 'fifty concurrent misses, one fetch')
})

t.test('key rotation: a retired key stops verifying after the next refresh', async (t) => {
  const { issuer, v, clock, sign } = await setup(t, { cache: { maxEntries: 100 } }, [keyA], 100)
  await v.ready()
  const oldToken = sign(keyA)
  t.equal(await outcome(v, oldToken), 'accepted')
  t.equal(v.stats().cachedTokens, 1)
  issuer.publish([keyB])
  const updated = waitFor<unknown>((resolve) => v.events.once('keys-updated', resolve), 5000, 'keys-updated')
  clock.advance(81_000) // past 80 % of max-age=100: the next lookup refreshes in the background
  t.equal(await outcome(v, sign(keyA)), 'accepted', 'the cached key serves while the refresh runs')
  await updated
  t.equal(v.stats().cachedTokens, 0, 'tokens of the removed key left the verified cache')
  t.equal(await outcome(v, oldToken), 'unknown_kid')
  t.equal(await outcome(v, sign(keyB)), 'accepted')
})

t.test('refreshed ahead of expiry per max-age, revalidated with the ETag', async (t) => {
  const { issuer, v, clock, sign } = await setup(t, {}, [keyA], 100)
  await v.ready()
  clock.advance(79_000)
  t.equal(await outcome(v, sign(keyA)), 'accepted')
  t.equal(issuer.counts.jwks, 1, 'not yet due')
  clock.advance(2_000)
  const refreshed = nextFetch(v)
  t.equal(await outcome(v, sign(keyA)), 'accepted')
  t.same(await refreshed, { outcome: 'not_modified' }, 'the background refresh')
  t.equal(issuer.counts.jwks, 2)
  t.equal(issuer.counts.notModified, 1, 'If-None-Match answered 304')
  clock.advance(79_000)
  t.equal(await outcome(v, sign(keyA)), 'accepted')
  t.equal(issuer.counts.jwks, 2, 'a 304 renews the lifetime too')
})

t.test('max-age is bounded by minTtlMs and maxTtlMs', async (t) => {
  const short = await setup(t, { jwks: { minTtlMs: 60_000 } }, [keyA], 1)
  await short.v.ready()
  short.clock.advance(40_000)
  t.equal(await outcome(short.v, short.sign(keyA)), 'accepted')
  t.equal(short.issuer.counts.jwks, 1)
  await short.v.refreshKeys()
  t.equal(short.issuer.counts.jwks, 2, 'refreshKeys forces a fetch')
  short.clock.advance(40_000)
  await outcome(short.v, short.sign(keyA))
  t.equal(short.issuer.counts.jwks, 2, 'max-age=1 was raised to 60 s')

  const long = await setup(t, { jwks: { maxTtlMs: 600_000 } }, [keyA], 86_400)
  await long.v.ready()
  long.clock.advance(479_000)
  await outcome(long.v, long.sign(keyA))
  t.equal(long.issuer.counts.jwks, 1)
  long.clock.advance(2_000)
  const refreshed = nextFetch(long.v)
  await outcome(long.v, long.sign(keyA))
  await refreshed
  t.equal(long.issuer.counts.jwks, 2, 'max-age=86400 was capped at 600 s: refreshed at 80 % of it')
})

t.test('stale-if-error: with the JWKS server stopped, cached keys keep verifying', async (t) => {
  const registry = new Registry()
  const { issuer, v, clock, sign } = await setup(t, { registry, jwks: { maxStaleMs: 3_600_000 } }, [keyA], 60)
  await v.ready()
  await issuer.close()
  clock.advance(120_000) // past expiry
  const failed = nextFetch(v)
  t.equal(await outcome(v, sign(keyA)), 'accepted')
  t.match(await failed, { outcome: 'failed', reason: 'network' })
  t.equal(await outcome(v, sign(keyA)), 'accepted', 'still, after a failed refresh')
  t.equal(v.isReady(), true)
  const text = await registry.metrics()
  t.match(text, /gatehouse_verifier_jwks_fetch_failures_total\{reason="network"\} [1-9]/)
  t.match(text, /gatehouse_verifier_jwks_cache_age_seconds 120/)

  t.equal(await outcome(v, sign(keyB)), '503 temporarily_unavailable', 'an unknown kid with the JWKS down is 503, not a silent 401')

  clock.advance(3_600_000) // past the stale-if-error limit
  t.equal(await outcome(v, sign(keyA)), '503 temporarily_unavailable')
  t.equal(v.isReady(), false)
})

t.test('an erroring JWKS endpoint at start: 503, then recovery', async (t) => {
  const { issuer, v, sign } = await setup(t)
  issuer.failWith = 500
  t.equal(await outcome(v, sign(keyA)), '503 temporarily_unavailable')
  t.equal(v.isReady(), false)
  issuer.failWith = undefined
  t.equal(await outcome(v, sign(keyA)), 'accepted', 'an early refetch recovers without waiting for the cool-down')
  t.equal(v.isReady(), true)
})

t.test('garbage from the JWKS endpoint is a failure, not an empty key set', async (t) => {
  const registry = new Registry()
  const bodies = [JSON.stringify({ nope: true }), 'not json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] })]
  for (const body of bodies) {
    const fetchImpl: FetchLike = async () => new Response(body, { status: 200 })
    const v = createVerifier({ issuer: 'http://127.0.0.1:9', jwksUri: 'http://127.0.0.1:9/jwks', audience: AUDIENCE, fetch: fetchImpl, registry: new Registry() })
    t.teardown(() => v.close())
    t.equal(await outcome(v, token({ key: keyA, issuer: 'http://127.0.0.1:9', now: Math.floor(Date.now() / 1000) })), '503 temporarily_unavailable', body)
  }
  void registry
})

t.test('only public members of eligible keys are imported', async (t) => {
  const weak = await import('node:crypto').then((c) => c.generateKeyPairSync('rsa', { modulusLength: 1024 }))
  const weakJwk = { ...weak.publicKey.export({ format: 'jwk' }), kid: 'weak', alg: 'RS256' }
  const privateJwk = { ...weak.privateKey.export({ format: 'jwk' }), kid: 'weak-private', alg: 'RS256' }
  const keys = [
    { ...keyA.publicJwk, d: 'AAAA', p: 'AAAA' }, // a leaked private member is ignored, the public part used
    { ...keyB.publicJwk, use: 'enc' },
    weakJwk,
    privateJwk,
  ]
  const fetchImpl: FetchLike = async () => new Response(JSON.stringify({ keys }), { status: 200 })
  const v = createVerifier({ issuer: 'http://127.0.0.1:9', jwksUri: 'http://127.0.0.1:9/jwks', audience: AUDIENCE, fetch: fetchImpl })
  t.teardown(() => v.close())
  await v.ready()
  t.equal(v.stats().jwksKeys, 1)
  const now = Math.floor(Date.now() / 1000)
  t.equal(await outcome(v, token({ key: keyA, issuer: 'http://127.0.0.1:9', now })), 'accepted')
  t.equal(await outcome(v, token({ key: keyB, issuer: 'http://127.0.0.1:9', now })), 'unknown_kid', 'use=enc is not a signing key')
})

t.test('a slow older fetch finishing after a newer one is ignored', async (t) => {
  const issuer = await startFakeIssuer({ keys: [keyA] })
  t.teardown(() => issuer.close())
  let calls = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  const logged: string[] = []
  const seen = new Set<(msg: string) => void>()
  const logger: VerifierLogger = {
    debug: (_o, msg) => {
      logged.push(msg ?? '')
      for (const fn of seen) fn(msg ?? '')
    },
    info: () => {},
    warn: () => {},
    error: () => {},
  }
  const fetchImpl: FetchLike = async (url, init) => {
    calls++
    if (calls === 2) {
      // Ignores the abort signal and answers, late, with the old key set.
      await gate
      return new Response(JSON.stringify({ keys: [keyA.publicJwk] }), { status: 200, headers: { 'cache-control': 'max-age=300' } })
    }
    return await fetch(url, init)
  }
  const v = createVerifier({
    issuer: issuer.issuer,
    jwksUri: issuer.jwksUri,
    audience: AUDIENCE,
    fetch: fetchImpl,
    cache: false,
    logger,
    jwks: { timeoutMs: 100, earlyRefetches: 0, cooldownMs: 3_600_000 },
  })
  t.teardown(() => v.close())
  await v.ready()
  await v.refreshKeys() // call 2: hangs, times out
  issuer.publish([keyB])
  await v.refreshKeys() // call 3: applies {B}
  const now = Math.floor(Date.now() / 1000)
  t.equal(await outcome(v, token({ key: keyB, issuer: issuer.issuer, now })), 'accepted')
  const ignored = waitFor<string>((resolve) => seen.add((m) => m.startsWith('ignoring') && resolve(m)), 5000, 'the late response')
  release()
  await ignored
  t.equal(await outcome(v, token({ key: keyB, issuer: issuer.issuer, now })), 'accepted', 'the newer key set stays')
  t.equal(await outcome(v, token({ key: keyA, issuer: issuer.issuer, now })), 'unknown_kid')
  t.equal(calls, 3, 'no refetch was needed (or allowed)')
})

t.test('metrics are registered in the given registry', async (t) => {
  const registry = new Registry()
  const { v, sign } = await setup(t, { registry, cache: { maxEntries: 10 } })
  await v.ready()
  const jwt = sign(keyA)
  await v.verify(jwt)
  await v.verify(jwt)
  await outcome(v, sign(keyA, { aud: 'api://other' }))
  const text = await registry.metrics()
  t.match(text, /gatehouse_verifier_jwks_fetches_total\{outcome="updated"\} 1/)
  t.match(text, /gatehouse_verifier_jwks_keys 1/)
  t.match(text, /gatehouse_verifier_token_verifications_total\{source="cache"\} 1/)
  t.match(text, /gatehouse_verifier_token_verifications_total\{source="signature"\} 1/)
  t.match(text, /gatehouse_verifier_token_rejections_total\{reason="wrong_audience"\} 1/)
  t.match(text, /gatehouse_verifier_revocation_feed_connected -1/)
})
