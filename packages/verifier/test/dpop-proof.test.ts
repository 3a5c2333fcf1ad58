import { createHmac, randomBytes } from 'node:crypto'
import t from 'tap'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import type { Test } from 'tap'
import { DEFAULT_CLOCK_START, ManualClock, dpopProof, makeDpopKey } from '@gatehouse/test-harness'
import { DpopNonces, MemoryDpopReplayCache, jwkThumbprint, normalizeHtu, replayKey, verifyDpopProof, type DpopProofCheck } from '../src/index.js'

/** RFC 9449 §4.3: every check of a proof, each with a proof that only that check refuses. */

const NOW = Math.floor(DEFAULT_CLOCK_START / 1000)
const URL_ = 'https://api.example.com/documents'
const es = makeDpopKey('ES256')
const check = (over: Partial<DpopProofCheck> = {}): DpopProofCheck => ({ method: 'GET', url: URL_, now: NOW, maxAgeSeconds: 60, clockToleranceSeconds: 5, ...over })
const proof = (over: Partial<Parameters<typeof dpopProof>[0]> = {}): string => dpopProof({ key: es, htm: 'GET', htu: URL_, iat: NOW, ...over })

function refused(t: Test, p: string, c: DpopProofCheck, detail: string, code = 'invalid_dpop_proof'): void {
  t.throws(() => verifyDpopProof(p, c), { code, statusCode: 400, detail }, detail)
}

t.test('a proof of each advertised algorithm is accepted and names its key', async (t) => {
  for (const alg of ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'] as const) {
    const key = makeDpopKey(alg)
    const v = verifyDpopProof(proof({ key, jti: `j-${alg}` }), check())
    t.same(v, { jkt: key.jkt, jti: `j-${alg}`, iat: NOW, alg }, alg)
  }
})

t.test('a proof made by jose (as clients make them) is accepted, and the thumbprint is RFC 7638', async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  const jwk = await exportJWK(publicKey)
  const made = await new SignJWT({ htm: 'POST', htu: 'https://as.example/token', jti: 'abc' })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk })
    .setIssuedAt(NOW)
    .sign(privateKey)
  const v = verifyDpopProof(made, check({ method: 'POST', url: 'https://as.example/token' }))
  t.equal(v.jkt, jwkThumbprint(jwk as Record<string, unknown>))
  // RFC 7638 §3.1's example key and thumbprint.
  const rfc = {
    kty: 'RSA',
    n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
    e: 'AQAB',
    alg: 'RS256',
    kid: '2011-04-29',
  }
  t.equal(jwkThumbprint(rfc), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs')
})

t.test('the header: typ, alg, jwk, crit', async (t) => {
  refused(t, proof({ header: { typ: 'JWT' } }), check(), 'typ')
  refused(t, proof({ header: { typ: undefined } }), check(), 'typ')
  refused(t, proof({ header: { alg: 'none' } }), check(), 'alg none')
  refused(t, proof({ header: { alg: 'HS256' } }), check(), 'alg HS256')
  refused(t, proof({ header: { alg: 'ES384' } }), check(), 'alg ES384')
  refused(t, proof({ header: { jwk: undefined } }), check(), 'no jwk')
  refused(t, proof({ header: { jwk: 'a string' } }), check(), 'no jwk')
  refused(t, proof({ header: { crit: ['exp'] } }), check(), 'crit')
  // The server's narrower list wins.
  refused(t, proof(), check({ algorithms: ['RS256'] }), 'alg ES256')
})

t.test('a private key in jwk is refused, whatever else is right', async (t) => {
  const priv = es.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
  t.ok(typeof priv.d === 'string')
  refused(t, proof({ header: { jwk: priv } }), check(), 'private jwk')
  refused(t, proof({ header: { jwk: { ...es.jwk, k: 'c2VjcmV0' } } }), check(), 'private jwk')
})

t.test('the key must fit the algorithm, and RSA keys must be 2048 bits or more', async (t) => {
  const rsa = makeDpopKey('RS256')
  refused(t, proof({ header: { jwk: rsa.jwk } }), check(), 'ES256 needs an EC P-256 key')
  refused(t, proof({ key: rsa, header: { jwk: es.jwk } }), check(), 'RS256 needs an RSA key')
  refused(t, proof({ header: { jwk: { ...es.jwk, crv: 'P-384' } } }), check(), 'ES256 needs an EC P-256 key')
  refused(t, proof({ header: { jwk: { ...es.jwk, x: 'AAAA' } } }), check(), 'jwk import failed')
  const weak = makeDpopKey('RS256', 1024)
  refused(t, proof({ key: weak }), check(), 'rsa modulus below 2048 bits')
})

t.test('the signature must be by the key in jwk', async (t) => {
  const other = makeDpopKey('ES256')
  refused(t, proof({ signer: other }), check(), 'signature')
  const p = proof()
  const [h, b, s] = p.split('.') as [string, string, string]
  const flipped = Buffer.from(s, 'base64url')
  flipped[0] = flipped[0]! ^ 1
  refused(t, `${h}.${b}.${flipped.toString('base64url')}`, check(), 'signature')
  refused(t, `${h}.${b}.`, check(), 'not a compact JWS')
  // A payload changed after signing (htm GET to POST).
  const post = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(b, 'base64url').toString()), htm: 'POST' })).toString('base64url')
  refused(t, `${h}.${post}.${s}`, check({ method: 'POST' }), 'signature')
})

t.test('malformed and oversized proofs are refused before parsing', async (t) => {
  refused(t, 'not-a-jwt', check(), 'not a compact JWS')
  refused(t, 'a.b.c.d', check(), 'not a compact JWS')
  refused(t, 'e30.e30.+++', check(), 'not a compact JWS')
  refused(t, `${Buffer.from('[1]').toString('base64url')}.e30.AA`, check(), 'header is not an object')
  refused(t, `${Buffer.from('{').toString('base64url')}.e30.AA`, check(), 'header is not JSON')
  refused(t, 'a'.repeat(9000), check(), 'oversized')
})

t.test('htm must be the request method, exactly', async (t) => {
  refused(t, proof({ htm: 'POST' }), check(), 'htm')
  refused(t, proof({ htm: 'get' }), check(), 'htm')
  t.ok(verifyDpopProof(proof({ htm: 'POST' }), check({ method: 'POST' })))
})

t.test('htu is compared without query and fragment, after RFC 3986 normalisation', async (t) => {
  for (const htu of ['HTTPS://API.EXAMPLE.COM/documents', 'https://api.example.com:443/documents', 'https://api.example.com/documents?x=1#f', 'https://api.example.com/a/../documents']) {
    t.ok(verifyDpopProof(proof({ htu }), check({ url: 'https://api.example.com/documents?page=2' })), htu)
  }
  t.ok(verifyDpopProof(proof({ htu: 'https://api.example.com/%7efoo' }), check({ url: 'https://api.example.com/%7Efoo' })))
  t.equal(normalizeHtu('http://a.example'), 'http://a.example/')
  t.equal(normalizeHtu('ftp://a.example/x'), null)
  t.equal(normalizeHtu('https://user:pw@a.example/x'), null)
  for (const htu of ['https://api.example.com/documents/', 'https://api.example.com/other', 'http://api.example.com/documents', 'https://api.example.com:8443/documents', 'https://evil.example/documents', '/documents']) {
    refused(t, proof({ htu }), check(), 'htu')
  }
  refused(t, proof({ payload: { htu: 42 } }), check(), 'htu')
})

t.test('iat: within the proof lifetime and the clock tolerance, on both sides', async (t) => {
  t.ok(verifyDpopProof(proof({ iat: NOW + 5 }), check()))
  t.ok(verifyDpopProof(proof({ iat: NOW - 65 }), check()))
  refused(t, proof({ iat: NOW + 6 }), check(), 'iat future')
  refused(t, proof({ iat: NOW - 66 }), check(), 'iat stale')
  refused(t, proof({ payload: { iat: String(NOW) } }), check(), 'iat')
  refused(t, proof({ payload: { iat: NOW + 0.5 } }), check(), 'iat')
  refused(t, proof({ payload: { iat: undefined } }), check(), 'iat')
})

t.test('jti is required and bounded', async (t) => {
  refused(t, proof({ payload: { jti: undefined } }), check(), 'jti')
  refused(t, proof({ jti: '' }), check(), 'jti')
  refused(t, proof({ jti: 'x'.repeat(257) }), check(), 'jti')
  t.ok(verifyDpopProof(proof({ jti: '-leading-dash' }), check()))
})

t.test('ath must hash the access token it comes with', async (t) => {
  const token = 'eyJhbGciOiJSUzI1NiJ9.e30.sig'
  t.ok(verifyDpopProof(proof({ accessToken: token }), check({ accessToken: token })))
  refused(t, proof({ accessToken: 'another-token' }), check({ accessToken: token }), 'ath')
  refused(t, proof(), check({ accessToken: token }), 'ath')
  refused(t, proof({ payload: { ath: 7 } }), check({ accessToken: token }), 'ath')
})

t.test('a required nonce: missing or wrong is use_dpop_nonce; the current one passes', async (t) => {
  const nonces = new DpopNonces(randomBytes(32), () => NOW * 1000)
  const c = check({ nonce: (n) => nonces.valid(n) })
  refused(t, proof(), c, 'nonce', 'use_dpop_nonce')
  refused(t, proof({ nonce: 'made-up' }), c, 'nonce', 'use_dpop_nonce')
  t.ok(verifyDpopProof(proof({ nonce: nonces.current() }), c))
  // A bad proof is invalid_dpop_proof even without its nonce: the nonce is checked last.
  refused(t, proof({ htm: 'PUT' }), c, 'htm')
})

t.test('nonces: the current and previous window pass, older ones and other secrets fail', async (t) => {
  const clock = new ManualClock()
  const secret = randomBytes(32)
  const nonces = new DpopNonces(secret, clock.now, 60_000)
  const first = nonces.current()
  t.equal(first.length, 35)
  t.ok(nonces.valid(first))
  clock.advance(60_000)
  t.not(nonces.current(), first)
  t.ok(nonces.valid(first), 'the previous window still passes')
  clock.advance(60_000)
  t.notOk(nonces.valid(first), 'two windows later it is stale')
  t.notOk(new DpopNonces(randomBytes(32), clock.now, 60_000).valid(nonces.current()), 'another secret')
  t.notOk(nonces.valid(undefined))
  t.notOk(nonces.valid(nonces.current().slice(1)))
  // Replicas with the same secret agree.
  t.ok(new DpopNonces(secret, clock.now, 60_000).valid(nonces.current()))
  t.throws(() => new DpopNonces(Buffer.alloc(8), clock.now), /at least 16 bytes/)
  // The nonce is the window and its MAC, nothing else.
  const raw = Buffer.from(nonces.current(), 'base64url')
  const mac = createHmac('sha256', secret).update(raw.subarray(0, 8)).digest().subarray(0, 18)
  t.same(raw.subarray(8), mac)
})

t.test('the replay cache: a proof is accepted once until it expires', async (t) => {
  const clock = new ManualClock()
  const cache = new MemoryDpopReplayCache(clock.now, 3)
  const key = replayKey({ jkt: es.jkt, jti: 'one' })
  t.equal(cache.claim(key, clock.now() + 1000), true)
  t.equal(cache.claim(key, clock.now() + 1000), false, 'replayed')
  t.not(replayKey({ jkt: makeDpopKey().jkt, jti: 'one' }), key, 'the same jti under another key is another proof')
  cache.claim('b', clock.now() + 1000)
  cache.claim('c', clock.now() + 1000)
  t.equal(cache.claim('d', clock.now() + 1000), false, 'full of live entries: refused, never forgotten')
  clock.advance(1000)
  t.equal(cache.claim('d', clock.now() + 1000), true, 'expired entries make room')
  t.equal(cache.claim(key, clock.now() + 1000), true, 'after its expiry a key may be claimed again')
  t.equal(cache.size, 2)
})

t.test('the replay cache when full: refused until the earliest live entry expires, then room again', async (t) => {
  const clock = new ManualClock()
  const cache = new MemoryDpopReplayCache(clock.now, 3)
  const start = clock.now()
  cache.claim('a', start + 3000)
  cache.claim('b', start + 1000)
  cache.claim('c', start + 2000)
  t.equal(cache.claim('d', start + 5000), false, 'full of live entries')
  clock.advance(999)
  t.equal(cache.claim('e', start + 5000), false, 'still before the earliest expiry')
  clock.advance(1)
  t.equal(cache.claim('d', start + 5000), true, 'the earliest (b) expired: room for one')
  t.equal(cache.claim('f', start + 5000), false, 'full again')
  t.equal(cache.claim('a', start + 9000), false, 'a live entry is still a replay')
  clock.advance(1000)
  t.equal(cache.claim('f', start + 5000), true, 'c expired')
})


t.test('non-ASCII ath and nonce are refused as bad proofs, never a crash (multi-byte characters)', async (t) => {
  const token = 'eyJhbGciOiJSUzI1NiJ9.e30.sig'
  const right = proof({ accessToken: token })
  const ath = JSON.parse(Buffer.from(right.split('.')[1]!, 'base64url').toString()).ath as string
  const wide = `${ath.slice(0, -1)}é` // the same number of characters, one byte more
  refused(t, proof({ payload: { ath: wide } }), check({ accessToken: token }), 'ath')
  const nonces = new DpopNonces(randomBytes(32), () => NOW * 1000)
  const nonce = `${nonces.current().slice(0, -1)}é`
  refused(t, proof({ nonce }), check({ nonce: (n) => nonces.valid(n) }), 'nonce', 'use_dpop_nonce')
})

t.test('replayUntil: as long as the proof could still be accepted, to the last millisecond', async (t) => {
  const { replayUntil } = await import('../src/index.js')
  const iat = NOW - 10
  const until = replayUntil({ iat }, 60, 5)
  const nowAt = (ms: number) => check({ now: Math.floor(ms / 1000) })
  t.ok(verifyDpopProof(proof({ iat }), nowAt(until - 1)), 'accepted one ms before')
  t.throws(() => verifyDpopProof(proof({ iat }), nowAt(until)), { code: 'invalid_dpop_proof', detail: 'iat stale' }, 'refused from then on')
})
