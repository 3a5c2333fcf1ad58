import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { gatehouseAuth, type DpopOptions, type DpopReplayCache, type VerifierOptions } from '../src/index.js'
import { AUDIENCE, makeDpopKey, makeKey, ManualClock, dpopProof, startFakeIssuer, token, type DpopKey, type DpopProofInput } from '@gatehouse/test-harness'

/**
 * DPoP at the resource server (RFC 9449 §7) through the fastify plugin: the token verified as
 * usual (and cached), then its binding, the proof and the proof's single use. Each refusal here
 * is a defence; removing it makes its test fail.
 */

const key = await makeKey('key-1')
const issuer = await startFakeIssuer({ keys: [key] })
t.teardown(() => issuer.close())
const clock = new ManualClock(Date.now())
const ALGS = 'algs="ES256 RS256 PS256 EdDSA Ed25519"'
const REALM = `realm="${AUDIENCE}"`
// light-my-request sends `Host: localhost:80`: without publicUrl, that is the origin htu must name.
const ORIGIN = 'http://localhost'

async function buildApp(t: Test, dpop: DpopOptions = {}, options: Partial<VerifierOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(gatehouseAuth, { issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now, dpop, ...options })
  app.get('/me', { config: { auth: true } }, async (request) => ({ sub: request.auth.subject, jkt: request.auth.jkt ?? null, type: request.auth.tokenType }))
  app.post('/documents', { config: { auth: { scopes: ['documents:write'] } } }, async (_req, reply) => reply.code(201).send({ ok: true }))
  app.get('/strict', { config: { auth: { dpop: 'required' } } }, async () => ({ ok: true }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

const alice = makeDpopKey('ES256')
const mallory = makeDpopKey('ES256')
const bound = (k: DpopKey = alice, claims: Record<string, unknown> = {}): string =>
  token({ key, issuer: issuer.issuer, now: clock.seconds(), claims: { cnf: { jkt: k.jkt }, ...claims } })
const plain = (): string => token({ key, issuer: issuer.issuer, now: clock.seconds() })
const proof = (accessToken: string, over: Partial<DpopProofInput> = {}): string =>
  dpopProof({ key: alice, htm: 'GET', htu: `${ORIGIN}/me`, iat: clock.seconds(), accessToken, ...over })
const dpopHeaders = (at: string, p: string | string[]): Record<string, string | string[]> => ({ authorization: `DPoP ${at}`, dpop: p })

async function get(app: FastifyInstance, headers: Record<string, string | string[] | undefined>, url = '/me') {
  return await app.inject({ method: 'GET', url, headers })
}

/** 401 with a DPoP challenge naming `error`; the body says the same code. */
function refusedDpop(t: Test, res: Awaited<ReturnType<typeof get>>, error: string, what: string): void {
  t.equal(res.statusCode, 401, what)
  t.match(res.headers['www-authenticate'], new RegExp(`^DPoP ${ALGS}, ${REALM}, error="${error}", error_description="[^"]+"$`), what)
  t.equal(res.json().error, error, what)
}

t.test('a DPoP-bound token with a valid proof: 200, request.auth names the key', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  const res = await get(app, dpopHeaders(at, proof(at)))
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { sub: 'user-alice', jkt: alice.jkt, type: 'DPoP' })
  t.equal(res.headers['dpop-nonce'], undefined, 'no nonce unless nonces are on')
  const lower = await get(app, { authorization: `dpop ${at}`, dpop: proof(at) })
  t.equal(lower.statusCode, 200, 'the scheme is case-insensitive')
  const bearer = await get(app, { authorization: `Bearer ${plain()}` })
  t.same(bearer.json(), { sub: 'user-alice', jkt: null, type: 'Bearer' }, 'a bearer token is still a bearer token')
})

t.test('the other proof algorithms: RS256, PS256, EdDSA, Ed25519', async (t) => {
  const app = await buildApp(t)
  for (const alg of ['RS256', 'PS256', 'EdDSA', 'Ed25519'] as const) {
    const k = makeDpopKey(alg)
    const at = bound(k)
    t.equal((await get(app, dpopHeaders(at, proof(at, { key: k })))).statusCode, 200, alg)
  }
})

t.test('a DPoP-bound token sent as Bearer is refused, with or without a proof', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  for (const headers of [{ authorization: `Bearer ${at}` }, { authorization: `Bearer ${at}`, dpop: proof(at) }]) {
    const res = await get(app, headers)
    t.equal(res.statusCode, 401)
    t.equal(res.json().error, 'invalid_token')
    t.match(res.headers['www-authenticate'], /^Bearer realm="api:\/\/resource", error="invalid_token", error_description="[^"]+", DPoP algs="[^"]+", realm="[^"]+"$/)
  }
})

t.test('a proof made with another key than the token is bound to: invalid_token', async (t) => {
  const app = await buildApp(t)
  const at = bound(alice)
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { key: mallory }))), 'invalid_token', 'key mismatch')
  // A proof whose jwk is alice's but signed by mallory: the signature fails.
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { signer: mallory }))), 'invalid_dpop_proof', 'jwk not the signer')
})

t.test('a bearer token presented as DPoP is refused', async (t) => {
  const app = await buildApp(t)
  const at = plain()
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at))), 'invalid_token', 'unbound token as DPoP')
})

t.test('a proof is single-use: the same proof twice is refused', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  const p = proof(at)
  t.equal((await get(app, dpopHeaders(at, p))).statusCode, 200)
  refusedDpop(t, await get(app, dpopHeaders(at, p)), 'invalid_dpop_proof', 'replayed')
  t.equal((await get(app, dpopHeaders(at, proof(at)))).statusCode, 200, 'a fresh proof passes')
  // The same jti with another signature is still the same proof (§11.1: jti per key).
  t.equal((await get(app, dpopHeaders(at, proof(at, { jti: 'fixed' })))).statusCode, 200)
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { jti: 'fixed' }))), 'invalid_dpop_proof', 'a new proof reusing a jti')
})

t.test('the token cache never skips the proof: a cached token still needs a fresh proof of its key', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  const first = proof(at)
  t.equal((await get(app, dpopHeaders(at, first))).statusCode, 200)
  const hits = app.verifier.stats().cacheHits
  refusedDpop(t, await get(app, dpopHeaders(at, first)), 'invalid_dpop_proof', 'replay of a cached token')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { key: mallory }))), 'invalid_token', 'other key, cached token')
  refusedDpop(t, await get(app, { authorization: `DPoP ${at}` }), 'invalid_dpop_proof', 'no proof, cached token')
  const down = await get(app, { authorization: `Bearer ${at}` })
  t.equal(down.statusCode, 401, 'downgrade, cached token')
  t.equal(app.verifier.stats().cacheHits, hits + 4, 'every one of them was a cache hit')
})

t.test('htm and htu must name this request', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { htm: 'POST' }))), 'invalid_dpop_proof', 'htm POST for a GET')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { htu: `${ORIGIN}/documents` }))), 'invalid_dpop_proof', 'other path')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { htu: 'https://localhost/me' }))), 'invalid_dpop_proof', 'other scheme')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { htu: 'http://evil.example/me' }))), 'invalid_dpop_proof', 'other host')
  t.equal((await get(app, dpopHeaders(at, proof(at, { htu: `${ORIGIN}/me?ignored=1` })), '/me?q=2')).statusCode, 200, 'query ignored (§4.3)')
  t.equal((await get(app, dpopHeaders(at, proof(at, { htu: 'HTTP://LOCALHOST:80/me' })))).statusCode, 200, 'compared normalized')
})

t.test('iat: a stale or future proof is refused; the window and the tolerance apply', async (t) => {
  const app = await buildApp(t, { maxAgeSeconds: 60 }, { clockTolerance: 5 })
  const at = bound()
  const now = clock.seconds()
  t.equal((await get(app, dpopHeaders(at, proof(at, { iat: now - 65 })))).statusCode, 200, 'at the edge: 60 s + 5 s tolerance')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { iat: now - 66 }))), 'invalid_dpop_proof', 'stale')
  t.equal((await get(app, dpopHeaders(at, proof(at, { iat: now + 5 })))).statusCode, 200, 'future within tolerance')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { iat: now + 6 }))), 'invalid_dpop_proof', 'future')
  // The injected clock decides: a proof made now is stale once the clock moves on.
  const p = proof(at)
  clock.advanceSeconds(66)
  refusedDpop(t, await get(app, dpopHeaders(at, p)), 'invalid_dpop_proof', 'stale by the clock')
})

t.test('ath: missing, or naming another token, is refused', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { payload: { ath: undefined } }))), 'invalid_dpop_proof', 'no ath')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(bound()))), 'invalid_dpop_proof', 'ath of another token')
})

t.test('alg none, HMAC, a private key in jwk, a wrong typ: refused', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  const good = proof(at)
  const [h, p] = good.split('.') as [string, string]
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>
  const none = `${Buffer.from(JSON.stringify({ ...header, alg: 'none' })).toString('base64url')}.${p}.`
  refusedDpop(t, await get(app, dpopHeaders(at, none)), 'invalid_dpop_proof', 'alg none')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { header: { alg: 'HS256' } }))), 'invalid_dpop_proof', 'HS256')
  const privateJwk = alice.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { header: { jwk: privateJwk } }))), 'invalid_dpop_proof', 'private jwk')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { header: { typ: 'JWT' } }))), 'invalid_dpop_proof', 'typ JWT')
  const narrowed = await buildApp(t, { algorithms: ['ES256'] })
  const ed = makeDpopKey('EdDSA')
  const edAt = bound(ed)
  const res = await get(narrowed, dpopHeaders(edAt, proof(edAt, { key: ed })))
  t.equal(res.statusCode, 401, 'an algorithm outside dpop.algorithms')
  t.match(res.headers['www-authenticate'], /^DPoP algs="ES256", /, 'only the accepted algorithms are advertised')
})

t.test('no proof, two DPoP headers, or garbage: invalid_dpop_proof, never a 5xx', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  refusedDpop(t, await get(app, { authorization: `DPoP ${at}` }), 'invalid_dpop_proof', 'no proof')
  const two = await get(app, dpopHeaders(at, [proof(at), proof(at)]))
  refusedDpop(t, two, 'invalid_dpop_proof', 'two DPoP headers')
  t.equal(two.json().error_description, 'the request carries more than one DPoP header')
  for (const p of ['', 'x', 'a.b.c', '....', `${proof(at)}.x`, 'é', 'A'.repeat(9000)]) {
    const res = await get(app, dpopHeaders(at, p))
    t.equal(res.statusCode, 401, JSON.stringify(p.slice(0, 20)))
    t.equal(res.json().error, 'invalid_dpop_proof')
  }
  const empty = await get(app, { authorization: 'DPoP ' })
  t.equal(empty.statusCode, 400, '"DPoP" without a token')
  t.match(empty.headers['www-authenticate'], /^DPoP algs="[^"]+", realm="[^"]+", error="invalid_request"/)
  const malformed = await get(app, { authorization: 'DPoP a"b', dpop: proof(at) })
  t.equal(malformed.statusCode, 400, 'a DPoP token that is no b64token')
  t.match(malformed.headers['www-authenticate'], /^DPoP algs="[^"]+", realm="[^"]+", error="invalid_request"/)
})

t.test('two DPoP headers over real HTTP (Node folds them into one value)', async (t) => {
  const app = await buildApp(t)
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const at = bound()
  const htu = `${base}/me`
  const headers = new Headers({ authorization: `DPoP ${at}` })
  headers.append('dpop', proof(at, { htu }))
  headers.append('dpop', proof(at, { htu }))
  const res = await fetch(htu, { headers })
  t.equal(res.status, 401)
  t.equal(((await res.json()) as { error_description: string }).error_description, 'the request carries more than one DPoP header')
  const one = await fetch(htu, { headers: { authorization: `DPoP ${at}`, dpop: proof(at, { htu }) } })
  t.equal(one.status, 200, 'htu from the listening origin')
})

t.test('challenges: none → Bearer and DPoP; 403 insufficient_scope keeps the DPoP scheme', async (t) => {
  const app = await buildApp(t)
  const none = await get(app, {})
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], `Bearer ${REALM}, DPoP ${ALGS}, ${REALM}`)
  const at = bound()
  const res = await app.inject({ method: 'POST', url: '/documents', headers: dpopHeaders(at, proof(at, { htm: 'POST', htu: `${ORIGIN}/documents` })), payload: {} })
  t.equal(res.statusCode, 403)
  t.equal(
    res.headers['www-authenticate'],
    `DPoP ${ALGS}, ${REALM}, error="insufficient_scope", error_description="the access token lacks the required scope", scope="documents:write"`,
  )
  const forged = bound(alice, { iss: 'https://evil' })
  refusedDpop(t, await get(app, dpopHeaders(forged, proof(forged))), 'invalid_token', 'a bad token sent as DPoP gets a DPoP challenge')
  const bearer = await get(app, { authorization: `Bearer ${token({ key, issuer: 'https://evil', now: clock.seconds() })}` })
  t.match(bearer.headers['www-authenticate'], /^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+"$/, 'Bearer keeps its challenge')
})

t.test('a malformed cnf makes the token invalid, never a bearer token', async (t) => {
  const app = await buildApp(t)
  for (const cnf of [{ jkt: 'short' }, { 'x5t#S256': 'abc' }, 'jkt', [alice.jkt], { jkt: 42 }]) {
    const at = token({ key, issuer: issuer.issuer, now: clock.seconds(), claims: { cnf } })
    t.equal((await get(app, { authorization: `Bearer ${at}` })).statusCode, 401, JSON.stringify(cnf))
    t.equal((await get(app, dpopHeaders(at, proof(at)))).statusCode, 401, JSON.stringify(cnf))
  }
})

t.test('server nonces: use_dpop_nonce with DPoP-Nonce, then the retry passes; old nonces expire', async (t) => {
  const app = await buildApp(t, { nonceSecret: 'a resource server nonce secret', nonceWindowMs: 60_000 })
  const at = bound()
  const first = await get(app, dpopHeaders(at, proof(at)))
  refusedDpop(t, first, 'use_dpop_nonce', 'no nonce')
  const nonce = first.headers['dpop-nonce'] as string
  t.match(nonce, /^[A-Za-z0-9_-]{35}$/)
  const ok = await get(app, dpopHeaders(at, proof(at, { nonce })))
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers['dpop-nonce'], nonce, 'the current nonce on a success too')
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at, { nonce: 'x'.repeat(35) }))), 'use_dpop_nonce', 'a made-up nonce')
  clock.advance(120_000)
  const stale = await get(app, dpopHeaders(at, proof(at, { nonce })))
  refusedDpop(t, stale, 'use_dpop_nonce', 'a nonce two windows old')
  t.not(stale.headers['dpop-nonce'], nonce, 'a new nonce')
  t.equal((await get(app, { authorization: `Bearer ${plain()}` })).statusCode, 200, 'bearer requests need no nonce')
})

t.test('DPoP required for the whole plugin, or for one route', async (t) => {
  const strict = await buildApp(t, { required: true })
  const res = await get(strict, { authorization: `Bearer ${plain()}` })
  refusedDpop(t, res, 'invalid_token', 'bearer token where DPoP is required')
  t.equal((await get(strict, {})).headers['www-authenticate'], `DPoP ${ALGS}, ${REALM}`, 'no token: the DPoP challenge alone')
  const at = bound()
  t.equal((await get(strict, dpopHeaders(at, proof(at)))).statusCode, 200)

  const app = await buildApp(t)
  refusedDpop(t, await get(app, { authorization: `Bearer ${plain()}` }, '/strict'), 'invalid_token', 'route requires DPoP')
  t.equal((await get(app, {}, '/strict')).headers['www-authenticate'], `DPoP ${ALGS}, ${REALM}`)
  t.equal((await get(app, dpopHeaders(at, proof(at, { htu: `${ORIGIN}/strict` })), '/strict')).statusCode, 200)
  t.equal((await get(app, { authorization: `Bearer ${plain()}` })).statusCode, 200, 'other routes still take bearer tokens')
})

t.test('publicUrl: htu names the public URL, not the Host the request came with', async (t) => {
  const app = await buildApp(t, { publicUrl: 'https://api.example.com/v1/' })
  const at = bound()
  t.equal((await get(app, dpopHeaders(at, proof(at, { htu: 'https://api.example.com/v1/me' })))).statusCode, 200)
  refusedDpop(t, await get(app, dpopHeaders(at, proof(at))), 'invalid_dpop_proof', 'the Host header is not trusted')
  const spoofed = await get(app, { ...dpopHeaders(at, proof(at, { htu: 'http://evil.example/me' })), host: 'evil.example' })
  refusedDpop(t, spoofed, 'invalid_dpop_proof', 'a spoofed Host does not help')
})

t.test('metrics count accepted proofs and refusals by a closed set of reasons', async (t) => {
  const app = await buildApp(t)
  const at = bound()
  const p = proof(at)
  await get(app, dpopHeaders(at, p))
  await get(app, dpopHeaders(at, p))
  await get(app, { authorization: `Bearer ${at}` })
  await get(app, dpopHeaders(at, proof(at, { header: { alg: 'HS256-whatever' } })))
  const text = await app.verifier.metrics.registry.metrics()
  t.match(text, /gatehouse_verifier_dpop_proofs_accepted_total 1\n/)
  t.match(text, /gatehouse_verifier_dpop_rejections_total\{reason="replay"\} 1\n/)
  t.match(text, /gatehouse_verifier_dpop_rejections_total\{reason="downgrade"\} 1\n/)
  t.match(text, /gatehouse_verifier_dpop_rejections_total\{reason="alg"\} 1\n/)
  t.notMatch(text, /HS256/, 'the proof\'s values never become labels')
})

t.test('a shared replay cache is consulted (async), and its failure is 503, never a 500', async (t) => {
  const seen = new Set<string>()
  let down = false
  const shared: DpopReplayCache = {
    claim: async (k) => {
      if (down) throw new Error('redis down')
      if (seen.has(k)) return false
      seen.add(k)
      return true
    },
  }
  const a = await buildApp(t, { replayCache: shared })
  const b = await buildApp(t, { replayCache: shared })
  const at = bound()
  const p = proof(at)
  t.equal((await get(a, dpopHeaders(at, p))).statusCode, 200)
  refusedDpop(t, await get(b, dpopHeaders(at, p)), 'invalid_dpop_proof', 'replayed at another replica')
  down = true
  const res = await get(a, dpopHeaders(at, proof(at)))
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'temporarily_unavailable')
})

t.test('options are validated up front', async (t) => {
  const base = { issuer: issuer.issuer, audience: AUDIENCE }
  const { Verifier } = await import('../src/index.js')
  t.throws(() => new Verifier({ ...base, dpop: { publicUrl: 'ftp://x' } }), /dpop.publicUrl/)
  t.throws(() => new Verifier({ ...base, dpop: { publicUrl: 'https://x/?q=1' } }), /dpop.publicUrl/)
  t.throws(() => new Verifier({ ...base, dpop: { algorithms: ['HS256'] } }), /dpop.algorithms/)
  t.throws(() => new Verifier({ ...base, dpop: { algorithms: ['none'] } }), /dpop.algorithms/)
  t.throws(() => new Verifier({ ...base, dpop: { nonceSecret: 'short' } }), /dpop.nonceSecret/)
  t.throws(() => new Verifier({ ...base, dpop: { maxAgeSeconds: 0 } }), /dpop.maxAgeSeconds/)
})
