import t, { type Test } from 'tap'
import { createVerifier, type AuthContext, type VerifierOptions } from '../src/index.js'
import { VerifiedTokenCache } from '../src/verified-cache.js'
import { AUDIENCE, makeKey, ManualClock, startFakeIssuer, token } from '@gatehouse/test-harness'

/** The verified-token cache: repeated tokens skip the signature check, never past `exp`. */

const key = await makeKey('key-1')
const issuer = await startFakeIssuer({ keys: [key] })
t.teardown(() => issuer.close())

function setup(t: Test, options: Partial<VerifierOptions> = {}) {
  const clock = new ManualClock(Date.now())
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

t.test('a token that only ends like a cached one never hits', async (t) => {
  const { v, sign } = setup(t)
  const jwt = sign({ scope: 'documents:read' })
  await v.verify(jwt)
  // The cached token's signature on another payload (more scopes): same ending, not the same token.
  const [h, , s] = jwt.split('.')
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()), scope: 'documents:read documents:write' })).toString('base64url')}.${s}`
  t.equal(v.verifyCached(forged), undefined, 'a miss')
  await t.rejects(v.verify(forged), { code: 'invalid_token', detail: 'bad_signature' }, 'and the signature check refuses it')
  t.ok(v.verifyCached(jwt), 'the genuine token is still cached')
  t.equal(v.stats().cachedTokens, 1)
})

t.test('the cache itself: entries found by ending, matched in full', async (t) => {
  const cache = new VerifiedTokenCache(10)
  const ctx = (subject: string) => ({ subject, expiresAt: 2_000_000_000 }) as unknown as AuthContext
  const tail = 'x'.repeat(40)
  const a = `aaa.bbb.${tail}`
  const b = `ccc.ddd.${tail}`
  cache.set(a, ctx('a'), 'k', 0)
  t.equal(cache.get(b, 0), undefined, 'another token with the same ending misses')
  t.equal(cache.get(a, 0)?.subject, 'a')
  cache.delete(b)
  t.equal(cache.get(a, 0)?.subject, 'a', 'deleting the other token leaves this one')
  cache.set(b, ctx('b'), 'k', 0)
  t.equal(cache.get(a, 0), undefined, 'the later one replaces it')
  t.equal(cache.get(b, 0)?.subject, 'b')
  t.equal(cache.size, 1)
  cache.set('short', ctx('s'), 'k', 0)
  t.equal(cache.get('short', 0)?.subject, 's', 'tokens shorter than the key length are keyed whole')
})

t.test('with the real clock (no clock option) expiry is enforced from the system time', async (t) => {
  const v = createVerifier({ issuer: issuer.issuer, jwksUri: issuer.jwksUri, audience: AUDIENCE, clockTolerance: 0 })
  t.teardown(() => v.close())
  const now = Math.floor(Date.now() / 1000)
  const live = token({ key, issuer: issuer.issuer, now, claims: { exp: now + 60 } })
  t.equal((await v.verify(live)).expiresAt, now + 60)
  const expired = token({ key, issuer: issuer.issuer, now: now - 120, claims: { exp: now - 60 } })
  await t.rejects(v.verify(expired), { code: 'invalid_token', detail: 'expired' })
})
