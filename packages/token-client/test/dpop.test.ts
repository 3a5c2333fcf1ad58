import { generateKeyPairSync, webcrypto } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { TokenClientError, createTokenClient, type TokenClientOptions } from '../src/index.js'
import { AUDIENCE, ManualClock, startFakeIssuer } from '@gatehouse/test-harness'
import { DpopNonces, MemoryDpopReplayCache, gatehouseAuth, replayKey, singleDpopHeader, verifyDpopProof, type VerifiedDpopProof } from '../../verifier/src/index.js'

/**
 * The token client's DPoP (RFC 9449) against a small fastify token endpoint that checks every
 * proof with the verifier's own `verifyDpopProof` and replay cache (the auth service's side is
 * built elsewhere), and its resource-call helper against the verifier plugin. Real HTTP on 127.0.0.1.
 */

const clock = new ManualClock(Date.now())
const issuer = await startFakeIssuer()
t.teardown(() => issuer.close())

interface FakeTokenEndpoint {
  url: string
  /** Every proof the endpoint accepted, in order. */
  proofs: VerifiedDpopProof[]
  /** Every request's DPoP header (or null), in order. */
  seen: (string | null)[]
  /** Require the endpoint's nonce (RFC 9449 §8). */
  nonces: DpopNonces | undefined
  /** Answer this token_type (default: DPoP when a proof came). */
  tokenType: string | undefined
  /** Answers to send before the real one (e.g. a 503). */
  failFirst: number[]
  /** Always answer use_dpop_nonce (a server that never accepts the nonce). */
  stubborn: boolean
}

async function tokenEndpoint(t: Test): Promise<FakeTokenEndpoint> {
  const replay = new MemoryDpopReplayCache(clock.now)
  const app: FastifyInstance = Fastify()
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body))
  const state: FakeTokenEndpoint = { url: '', proofs: [], seen: [], nonces: undefined, tokenType: undefined, failFirst: [], stubborn: false }
  app.post('/token', async (request, reply) => {
    const header = singleDpopHeader(request.headers.dpop)
    state.seen.push(header)
    const status = state.failFirst.shift()
    if (status !== undefined) return reply.code(status).send({ error: 'temporarily_unavailable' })
    let jkt: string | undefined
    if (header !== null) {
      try {
        const nonces = state.nonces
        const proof = verifyDpopProof(header, {
          method: 'POST',
          url: state.url,
          now: clock.seconds(),
          maxAgeSeconds: 60,
          clockToleranceSeconds: 5,
          nonce: state.stubborn ? () => false : nonces === undefined ? undefined : (n) => nonces.valid(n),
        })
        if (!replay.claim(replayKey(proof), (proof.iat + 65) * 1000)) return reply.code(400).send({ error: 'invalid_dpop_proof', error_description: 'replayed' })
        state.proofs.push(proof)
        jkt = proof.jkt
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'use_dpop_nonce') void reply.header('dpop-nonce', state.nonces?.current() ?? 'nonce-that-never-works')
        return reply.code(400).send({ error: code, error_description: (err as Error).message })
      }
    }
    const accessToken = issuer.serviceToken({ scope: 'documents:read', ...(jkt === undefined ? {} : { cnf: { jkt } }) })
    return reply.header('cache-control', 'no-store').send({ access_token: accessToken, token_type: state.tokenType ?? (jkt === undefined ? 'Bearer' : 'DPoP'), expires_in: 300 })
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  state.url = `${base}/token`
  t.teardown(() => app.close())
  return state
}

function client(endpoint: FakeTokenEndpoint, extra: Partial<TokenClientOptions> = {}) {
  return createTokenClient({
    tokenEndpoint: endpoint.url,
    clientId: 'billing',
    credentials: { type: 'client_secret_basic', secret: 's3cret' },
    clock: clock.now,
    sleep: async () => undefined,
    random: () => 0.5,
    dpop: true,
    ...extra,
  })
}

t.test('dpop: true: token requests carry a valid ES256 proof; the token is DPoP-bound to the client key', async (t) => {
  const srv = await tokenEndpoint(t)
  const getToken = client(srv)
  const token = await getToken.token()
  t.equal(token.tokenType, 'DPoP')
  t.equal(srv.proofs.length, 1, 'the endpoint verified the proof')
  t.equal(srv.proofs[0]!.alg, 'ES256')
  t.equal(srv.proofs[0]!.jkt, await getToken.dpopThumbprint(), 'the proof is of the client\'s key')
  const header = JSON.parse(Buffer.from(srv.seen[0]!.split('.')[0]!, 'base64url').toString()) as { jwk: Record<string, unknown> }
  t.same(Object.keys(header.jwk).sort(), ['crv', 'kty', 'x', 'y'], 'only public members in jwk')
  t.equal(await getToken(), token.accessToken, 'cached as before: no new request')
  t.equal(srv.seen.length, 1)
  getToken.invalidate()
  await getToken()
  t.equal(srv.proofs.length, 2, 'a new request, a new proof (the endpoint refuses a replayed one)')
  t.not(srv.proofs[0]!.jti, srv.proofs[1]!.jti)
})

t.test('retries make a fresh proof each time', async (t) => {
  const srv = await tokenEndpoint(t)
  srv.failFirst = [503, 502]
  const getToken = client(srv)
  t.equal((await getToken.token()).tokenType, 'DPoP')
  t.equal(srv.seen.length, 3)
  t.equal(new Set(srv.seen).size, 3, 'three different proofs')
})

t.test('use_dpop_nonce: one retry with the DPoP-Nonce; the nonce is remembered for the origin', async (t) => {
  const srv = await tokenEndpoint(t)
  srv.nonces = new DpopNonces(Buffer.from('token endpoint nonce secret'), clock.now)
  const getToken = client(srv)
  t.equal((await getToken.token()).tokenType, 'DPoP')
  t.equal(srv.seen.length, 2, 'refused once, then accepted')
  getToken.invalidate()
  await getToken()
  t.equal(srv.seen.length, 3, 'the remembered nonce is sent at once')
  clock.advance(11 * 60_000)
  getToken.invalidate()
  await getToken()
  t.equal(srv.seen.length, 5, 'an expired nonce: one more round trip')
})

t.test('a server that never takes the nonce: one retry only, then use_dpop_nonce', async (t) => {
  const srv = await tokenEndpoint(t)
  srv.stubborn = true
  const getToken = client(srv)
  const err = (await getToken().catch((e: unknown) => e)) as TokenClientError
  t.ok(err instanceof TokenClientError)
  t.equal(err.code, 'use_dpop_nonce')
  t.equal(err.attempts, 1, 'not retried as a transient failure')
  t.equal(srv.seen.length, 2)
})

t.test('token types: Bearer from a server without DPoP is used as Bearer; DPoP without a key is refused', async (t) => {
  const srv = await tokenEndpoint(t)
  srv.tokenType = 'Bearer'
  const dpopClient = client(srv)
  t.equal((await dpopClient.token()).tokenType, 'Bearer')
  const headers = await dpopClient.authorizationHeaders('GET', 'https://api.example.com/x')
  t.same(Object.keys(headers), ['authorization'])
  t.match(headers.authorization, /^Bearer /)

  srv.tokenType = 'DPoP'
  const plain = client(srv, { dpop: undefined })
  const err = (await plain().catch((e: unknown) => e)) as TokenClientError
  t.equal(err.code, 'invalid_response', 'a DPoP-bound token is no use without the key')
  t.equal(srv.seen.at(-1), null, 'no proof was sent')
})

t.test('keys given: KeyObjects, CryptoKeys, the public key derived; bad keys refused up front', async (t) => {
  const srv = await tokenEndpoint(t)
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const a = client(srv, { dpop: { privateKey: pair.privateKey, publicKey: pair.publicKey } })
  const b = client(srv, { dpop: { privateKey: pair.privateKey } })
  t.equal(await a.dpopThumbprint(), await b.dpopThumbprint())
  await a()
  t.equal(srv.proofs.at(-1)!.jkt, await a.dpopThumbprint())
  const web = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const c = client(srv, { dpop: { privateKey: web.privateKey, publicKey: web.publicKey } })
  await c()
  t.equal(srv.proofs.at(-1)!.jkt, await c.dpopThumbprint(), 'a CryptoKey pair')
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  t.throws(() => client(srv, { dpop: { privateKey: rsa.privateKey } }), /EC P-256/)
  t.throws(() => client(srv, { dpop: { privateKey: pair.privateKey, publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey } }), /not the private key/)
  t.throws(() => client(srv, { dpop: { privateKey: pair.publicKey } }), /private key/)
  t.equal(await client(srv, { dpop: undefined }).dpopThumbprint(), undefined)
})

t.test('authorizationHeaders: a fresh proof per call, accepted by the verifier plugin; resource nonces', async (t) => {
  const srv = await tokenEndpoint(t)
  const api = Fastify()
  await api.register(gatehouseAuth, { issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now })
  api.get('/documents', { config: { auth: { scopes: ['documents:read'] } } }, async (request) => ({ jkt: request.auth.jkt, type: request.auth.tokenType }))
  const base = await api.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => api.close())
  const getToken = client(srv)
  const url = `${base}/documents?page=2#top`
  for (let i = 0; i < 3; i++) {
    const headers = await getToken.authorizationHeaders('GET', url)
    t.match(headers.authorization, /^DPoP /)
    const res = await fetch(url, { headers })
    t.equal(res.status, 200, `call ${i + 1}`)
    t.same(await res.json(), { jkt: await getToken.dpopThumbprint(), type: 'DPoP' })
  }
  t.equal(srv.seen.length, 1, 'one token for all three calls')
  const once = await getToken.authorizationHeaders('GET', url)
  t.equal((await fetch(url, { headers: once })).status, 200)
  t.equal((await fetch(url, { headers: once })).status, 401, 'the same headers twice: the proof is single-use')
  const post = await getToken.authorizationHeaders('post', url)
  t.equal((await fetch(url, { headers: post })).status, 401, 'a proof for POST is no proof for GET')
  await t.rejects(getToken.authorizationHeaders('GET', 'not a url'), TypeError)

  // A resource server with nonces: the first call learns the nonce, the next ones carry it.
  const strict = Fastify()
  await strict.register(gatehouseAuth, { issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now, dpop: { nonceSecret: 'resource nonce secret 1234' } })
  strict.get('/documents', { config: { auth: true } }, async () => ({ ok: true }))
  const strictBase = await strict.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => strict.close())
  const first = await fetch(`${strictBase}/documents`, { headers: await getToken.authorizationHeaders('GET', `${strictBase}/documents`) })
  t.equal(first.status, 401)
  t.equal(((await first.json()) as { error: string }).error, 'use_dpop_nonce')
  getToken.rememberDpopNonce(`${strictBase}/documents`, first)
  const second = await fetch(`${strictBase}/documents`, { headers: await getToken.authorizationHeaders('GET', `${strictBase}/documents`) })
  t.equal(second.status, 200)
  t.equal((await fetch(url, { headers: await getToken.authorizationHeaders('GET', url) })).status, 200, 'nonces are per origin: the other API gets none')
})
