import t, { type Test } from 'tap'
import { createVerifier, type VerifierOptions } from '../src/index.js'
import { AUDIENCE, makeKey, manualClock, startIssuer, token } from './helpers/issuer.js'

/** The verified-token cache: repeated tokens skip the signature check, never past `exp`. */

const key = await makeKey('key-1')
const issuer = await startIssuer([key])
t.teardown(() => issuer.close())

function setup(t: Test, options: Partial<VerifierOptions> = {}) {
  const clock = manualClock()
  const v = createVerifier({ issuer: issuer.issuer, jwksUri: issuer.jwksUri, audience: AUDIENCE, clock: clock.now, ...options })
  t.teardown(() => v.close())
  const sign = (claims: Record<string, unknown> = {}): string => token({ key, issuer: issuer.issuer, now: clock.seconds(), claims })
  return { v, clock, sign }
}

t.test('a repeated token skips verification', async (t) => {
  const { v, sign } = setup(t)
  const jwt = sign()
  const first = await v.verify(jwt)
  t.same(v.stats(), { ...v.stats(), cacheHits: 0, signatureVerifications: 1, cachedTokens: 1 })
  const second = await v.verify(jwt)
  t.equal(second, first, 'the same frozen context')
  t.equal(v.verifyCached(jwt), first, 'synchronously')
  t.equal(v.stats().signatureVerifications, 1)
  t.equal(v.stats().cacheHits, 2)
  t.equal(v.verifyCached(sign({ jti: 'another' })), undefined, 'only an exact token string hits')
})

t.test('a cached entry never outlives exp', async (t) => {
  const { v, clock, sign } = setup(t, { clockTolerance: 0 })
  const exp = clock.seconds() + 60
  const jwt = sign({ exp })
  await v.verify(jwt)
  clock.set(exp * 1000 - 1)
  t.ok(v.verifyCached(jwt), 'a hit 1 ms before exp')
  clock.set(exp * 1000)
  t.equal(v.verifyCached(jwt), undefined, 'dropped at exp')
  await t.rejects(v.verify(jwt), { code: 'invalid_token', detail: 'expired' })
  t.equal(v.stats().cachedTokens, 0)
})

t.test('at exp the token is verified again (and the clock tolerance applies there)', async (t) => {
  const { v, clock, sign } = setup(t, { clockTolerance: 30 })
  const exp = clock.seconds() + 60
  const jwt = sign({ exp })
  await v.verify(jwt)
  clock.set(exp * 1000 + 10_000)
  await v.verify(jwt)
  t.equal(v.stats().signatureVerifications, 2, 'not served from the cache past exp')
  t.equal(v.stats().cachedTokens, 0, 'and not cached again past exp')
})

t.test('LRU-bounded', async (t) => {
  const { v, sign } = setup(t, { cache: { maxEntries: 2 } })
  const [a, b, c] = [sign({ jti: 'a' }), sign({ jti: 'b' }), sign({ jti: 'c' })]
  await v.verify(a)
  await v.verify(b)
  await v.verify(a) // a is now the most recently used
  await v.verify(c) // evicts b
  t.equal(v.stats().cachedTokens, 2)
  t.ok(v.verifyCached(a))
  t.ok(v.verifyCached(c))
  t.equal(v.verifyCached(b), undefined)
})

t.test('cache: false verifies every time', async (t) => {
  const { v, sign } = setup(t, { cache: false })
  const jwt = sign()
  await v.verify(jwt)
  await v.verify(jwt)
  t.equal(v.stats().signatureVerifications, 2)
  t.equal(v.verifyCached(jwt), undefined)
})

t.test('a refused token is never cached', async (t) => {
  const { v, sign } = setup(t)
  const jwt = sign({ aud: 'api://other' })
  await t.rejects(v.verify(jwt), { code: 'invalid_token' })
  await t.rejects(v.verify(jwt), { code: 'invalid_token' })
  t.equal(v.stats().cachedTokens, 0)
})
