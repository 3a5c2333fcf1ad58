/**
 * DPoP at /token (RFC 9449 §5): bound access tokens for every grant, the clients that must use
 * DPoP, server nonces, and the proofs the endpoint refuses. Real HTTP handling through
 * app.inject, on the memory store and on Redis (shared replay cache between replicas).
 */
import t, { type Test } from 'tap'
import { makeDpopKey, startRedis } from '@gatehouse/test-harness'
import { basic } from '../helpers.js'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { DPOP_ONLY_CLIENT, PASSWORD, jwtPayload, tokenProof, tokenWithProof } from './helpers.js'

const keyA = makeDpopKey('ES256')
const keyB = makeDpopKey('ES256')

async function app(t: Test, env: Record<string, string> = {}): Promise<OidcApp> {
  const h = await startOidcApp({ env, clients: [DPOP_ONLY_CLIENT] })
  t.teardown(h.close)
  return h
}

const target = (h: OidcApp) => ({ issuer: h.config.issuer, now: h.clock.now })

async function metric(h: OidcApp): Promise<string> {
  return await h.deps.metrics.registry.getSingleMetricAsString('gatehouse_dpop_proofs_total')
}

function expectProofError(t: Test, res: { statusCode: number; json(): unknown }, code = 'invalid_dpop_proof', message = `refused with ${code}`): void {
  t.equal(res.statusCode, 400, message)
  t.match(res.json(), { error: code }, message)
}

t.test('password grant: a proof binds the access token (cnf.jkt, token_type DPoP); without one it stays Bearer', async (t) => {
  const h = await app(t)
  const res = await tokenWithProof(h.app, PASSWORD, tokenProof(target(h), keyA))
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.token_type, 'DPoP')
  t.same(jwtPayload(body.access_token).cnf, { jkt: keyA.jkt })
  const fam = await h.deps.families.get(jwtPayload(body.access_token).sid as string)
  t.notOk(fam?.jkt, "a confidential client's family is not bound (its refresh token is bound to its authentication)")

  const plain = await tokenWithProof(h.app, PASSWORD, undefined)
  t.equal(plain.json().token_type, 'Bearer')
  t.notOk(jwtPayload(plain.json().access_token).cnf)

  // A confidential client refreshes with or without a proof; a proof binds the new access token.
  const r1 = await tokenWithProof(h.app, { grant_type: 'refresh_token', refresh_token: body.refresh_token }, tokenProof(target(h), keyB))
  t.equal(r1.statusCode, 200)
  t.equal(r1.json().token_type, 'DPoP')
  t.same(jwtPayload(r1.json().access_token).cnf, { jkt: keyB.jkt })
  const r2 = await tokenWithProof(h.app, { grant_type: 'refresh_token', refresh_token: r1.json().refresh_token }, undefined)
  t.equal(r2.json().token_type, 'Bearer')
  t.match(await metric(h), /gatehouse_dpop_proofs_total\{outcome="accepted"\} 2/)
})

t.test('client_credentials: bound when a proof comes; introspection says DPoP and names the key (§6.2)', async (t) => {
  const h = await app(t)
  const auth = basic('reporting-service', 'reporting-secret')
  const res = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, tokenProof(target(h), keyA), auth)
  t.equal(res.statusCode, 200)
  t.equal(res.json().token_type, 'DPoP')
  t.same(jwtPayload(res.json().access_token).cnf, { jkt: keyA.jkt })
  const intro = await h.app.inject({ method: 'POST', url: '/introspect', headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${res.json().access_token}` })
  t.match(intro.json(), { active: true, token_type: 'DPoP', cnf: { jkt: keyA.jkt } })
  const bearer = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, undefined, auth)
  const intro2 = await h.app.inject({ method: 'POST', url: '/introspect', headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${bearer.json().access_token}` })
  t.match(intro2.json(), { active: true, token_type: 'access_token' })
  t.notOk('cnf' in intro2.json())
})

t.test('a client registered with dpop_bound_access_tokens must send a proof', async (t) => {
  const h = await app(t)
  const auth = basic('dpop-svc', 'dpop-svc-secret')
  const none = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, undefined, auth)
  expectProofError(t, none)
  t.match(none.json(), { error_description: /must send a DPoP proof/ })
  t.match(await metric(h), /outcome="missing"\} 1/)
  t.ok(h.logs.events('dpop.proof_refused').some((e) => e.reason === 'no proof' && e.client_id === 'dpop-svc'), 'the refusal is logged with its reason')
  const ok = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, tokenProof(target(h), keyA), auth)
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().token_type, 'DPoP')
})

t.test('discovery advertises the proof algorithms', async (t) => {
  const h = await app(t)
  const doc = (await h.app.inject('/.well-known/openid-configuration')).json()
  t.same(doc.dpop_signing_alg_values_supported, ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'])
})

t.test('every proof algorithm advertised is accepted', async (t) => {
  const h = await app(t)
  for (const alg of ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'] as const) {
    const key = makeDpopKey(alg)
    const res = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, tokenProof(target(h), key), basic('reporting-service', 'reporting-secret'))
    t.equal(res.statusCode, 200, alg)
    t.same(jwtPayload(res.json().access_token).cnf, { jkt: key.jkt }, alg)
  }
})

t.test('attacks: every bad proof is 400 invalid_dpop_proof, and spends nothing', async (t) => {
  const h = await app(t)
  const auth = basic('reporting-service', 'reporting-secret')
  const cc = { grant_type: 'client_credentials' }
  const now = () => h.clock.seconds()

  t.test('the same proof twice (replay, §11.1)', async (t) => {
    const proof = tokenProof(target(h), keyA)
    t.equal((await tokenWithProof(h.app, cc, proof, auth)).statusCode, 200)
    const again = await tokenWithProof(h.app, cc, proof, auth)
    expectProofError(t, again)
    t.match(again.json(), { error_description: /already been used/ })
    t.match(await metric(h), /outcome="replayed"\} 1/)
  })

  t.test('a proof for another URL or another method', async (t) => {
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { htu: `${h.config.issuer}/userinfo` }), auth), undefined, 'another path')
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { htu: 'https://evil.example/token' }), auth), undefined, 'another host')
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { htm: 'GET' }), auth), undefined, 'another method')
  })

  t.test('a stale or a future iat', async (t) => {
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { iat: now() - 66 }), auth), undefined, 'older than 60 s + 5 s')
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { iat: now() + 6 }), auth), undefined, 'more than 5 s ahead')
    t.equal((await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { iat: now() - 60 }), auth)).statusCode, 200, 'at the edge: accepted')
  })

  t.test('alg none and HS256', async (t) => {
    const none = tokenProof(target(h), keyA, { header: { alg: 'none' } })
    expectProofError(t, await tokenWithProof(h.app, cc, `${none.split('.').slice(0, 2).join('.')}.`, auth), undefined, 'alg none, no signature')
    expectProofError(t, await tokenWithProof(h.app, cc, none, auth), undefined, 'alg none')
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { header: { alg: 'HS256' } }), auth), undefined, 'HS256')
  })

  t.test('a private key in jwk; a jwk that is not the signer', async (t) => {
    const privateJwk = keyA.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { header: { jwk: privateJwk } }), auth), undefined, 'private jwk')
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { signer: keyB }), auth), undefined, 'signed by another key')
    expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { header: { typ: 'JWT' } }), auth), undefined, 'typ')
    expectProofError(t, await tokenWithProof(h.app, cc, 'not-a-jwt', auth), undefined, 'garbage')
  })

  t.test('a bad proof spends no refresh token', async (t) => {
    const login = await tokenWithProof(h.app, PASSWORD, undefined)
    const rt = login.json().refresh_token as string
    const bad = await tokenWithProof(h.app, { grant_type: 'refresh_token', refresh_token: rt }, tokenProof(target(h), keyA, { htm: 'GET' }))
    expectProofError(t, bad)
    const fam = await h.deps.families.lookup(rt)
    t.match(fam, { current: true, family: { generation: 0, revoked: false } }, 'the token is still current')
    t.equal((await tokenWithProof(h.app, { grant_type: 'refresh_token', refresh_token: rt }, tokenProof(target(h), keyA))).statusCode, 200, 'and rotates with a good proof')
  })

  t.test('a bad proof spends no client assertion: checked before client authentication', async (t) => {
    const replayed = await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { htm: 'GET' }), basic('reporting-service', 'wrong-secret'))
    expectProofError(t, replayed, 'invalid_dpop_proof', 'the proof is judged before the client')
  })
})

t.test('ISSUER with a path prefix: the proof names the public URL', async (t) => {
  const h = await app(t, { ISSUER: 'https://id.example.com/auth' })
  const auth = basic('reporting-service', 'reporting-secret')
  const good = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, tokenProof({ issuer: 'https://id.example.com/auth', now: h.clock.now }, keyA), auth)
  t.equal(good.statusCode, 200)
  const local = await tokenWithProof(h.app, { grant_type: 'client_credentials' }, tokenProof({ issuer: 'https://id.example.com', now: h.clock.now }, keyA), auth)
  expectProofError(t, local, undefined, 'the URL the service is reached at behind the proxy is not the public one')
})

t.test('DPOP_REQUIRE_NONCE: use_dpop_nonce with a DPoP-Nonce header, then the nonce is accepted (§8)', async (t) => {
  const h = await app(t, { DPOP_REQUIRE_NONCE: 'true' })
  const auth = basic('reporting-service', 'reporting-secret')
  const cc = { grant_type: 'client_credentials' }
  const first = await tokenWithProof(h.app, cc, tokenProof(target(h), keyA), auth)
  expectProofError(t, first, 'use_dpop_nonce')
  const nonce = first.headers['dpop-nonce']
  t.type(nonce, 'string')
  t.match(await metric(h), /outcome="use_nonce"\} 1/)

  const second = await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { nonce: nonce as string }), auth)
  t.equal(second.statusCode, 200)
  t.equal(second.json().token_type, 'DPoP')
  t.type(second.headers['dpop-nonce'], 'string', 'a successful DPoP response carries the next nonce (§8.2)')

  expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { nonce: 'x'.repeat(35) }), auth), 'use_dpop_nonce', 'a made-up nonce')
  // A nonce lives one to two windows of 5 minutes.
  h.clock.advance(5 * 60_000)
  t.equal((await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { nonce: nonce as string }), auth)).statusCode, 200, 'the previous window: still good')
  h.clock.advance(5 * 60_000)
  expectProofError(t, await tokenWithProof(h.app, cc, tokenProof(target(h), keyA, { nonce: nonce as string }), auth), 'use_dpop_nonce', 'two windows on: stale')

  const bearer = await tokenWithProof(h.app, cc, undefined, auth)
  t.equal(bearer.statusCode, 200, 'a Bearer client is not asked for nonces')
  t.notOk(bearer.headers['dpop-nonce'])
})

t.test('nonces agree across replicas: derived from COOKIE_SECRET', async (t) => {
  const secret = 'replica-cookie-secret-0123456789abcdefghij'
  const a = await app(t, { DPOP_REQUIRE_NONCE: 'true', COOKIE_SECRET: secret })
  const b = await app(t, { DPOP_REQUIRE_NONCE: 'true', COOKIE_SECRET: secret })
  const c = await app(t, { DPOP_REQUIRE_NONCE: 'true', COOKIE_SECRET: `${secret}-other` })
  const auth = basic('reporting-service', 'reporting-secret')
  const cc = { grant_type: 'client_credentials' }
  const nonce = (await tokenWithProof(a.app, cc, tokenProof(target(a), keyA), auth)).headers['dpop-nonce'] as string
  t.equal((await tokenWithProof(b.app, cc, tokenProof(target(b), keyA, { nonce }), auth)).statusCode, 200, 'another replica accepts it')
  expectProofError(t, await tokenWithProof(c.app, cc, tokenProof(target(c), keyA, { nonce }), auth), 'use_dpop_nonce', 'a service with another secret does not')
})

t.test('Redis: replicas share the replay cache', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, { REDIS_URL: redis.url })
  const b = await app(t, { REDIS_URL: redis.url })
  const auth = basic('reporting-service', 'reporting-secret')
  const proof = tokenProof(target(a), keyA)
  t.equal((await tokenWithProof(a.app, { grant_type: 'client_credentials' }, proof, auth)).statusCode, 200)
  expectProofError(t, await tokenWithProof(b.app, { grant_type: 'client_credentials' }, proof, auth), undefined, 'the proof replayed at another replica')
})
