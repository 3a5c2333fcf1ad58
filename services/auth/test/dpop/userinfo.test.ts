/**
 * /userinfo with DPoP (RFC 9449 §7): `Authorization: DPoP <token>` with a proof of the token's key,
 * its `ath`, single use; a DPoP-bound token is never accepted as Bearer; errors are 401 with a
 * `DPoP` challenge (use_dpop_nonce with a DPoP-Nonce header when nonces are on), and Bearer
 * requests keep their Bearer challenges.
 */
import t, { type Test } from 'tap'
import { SignJWT } from 'jose'
import { dpopProof, makeDpopKey, type DpopKey, type DpopProofInput } from '@gatehouse/test-harness'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { PASSWORD, tokenProof, tokenWithProof } from './helpers.js'

const keyA = makeDpopKey('ES256')
const keyB = makeDpopKey('ES256')

async function setup(t: Test, env: Record<string, string> = {}): Promise<{ h: OidcApp; dpopToken: string; bearerToken: string }> {
  const h = await startOidcApp({ env })
  t.teardown(h.close)
  const target = { issuer: h.config.issuer, now: h.clock.now }
  let first = await tokenWithProof(h.app, PASSWORD, tokenProof(target, keyA))
  const nonce = first.headers['dpop-nonce']
  if (first.statusCode !== 200 && typeof nonce === 'string') first = await tokenWithProof(h.app, PASSWORD, tokenProof(target, keyA, { nonce }))
  const bearer = await tokenWithProof(h.app, PASSWORD, undefined)
  return { h, dpopToken: first.json().access_token, bearerToken: bearer.json().access_token }
}

function proof(h: OidcApp, key: DpopKey, accessToken: string, over: Partial<DpopProofInput> = {}): string {
  return dpopProof({ key, htm: 'GET', htu: `${h.config.issuer}/userinfo`, iat: h.clock.seconds(), accessToken, ...over })
}

function userinfo(h: OidcApp, authorization: string | undefined, dpop?: string, method: 'GET' | 'POST' = 'GET') {
  const headers: Record<string, string> = {}
  if (authorization !== undefined) headers.authorization = authorization
  if (dpop !== undefined) headers.dpop = dpop
  return h.app.inject({ method, url: '/userinfo', headers })
}

function refused(t: Test, res: { statusCode: number; headers: Record<string, unknown> }, error: string, message: string): void {
  t.equal(res.statusCode, 401, message)
  const challenge = String(res.headers['www-authenticate'])
  t.match(challenge, /^DPoP algs="ES256 RS256 PS256 EdDSA Ed25519"/, `${message}: a DPoP challenge`)
  t.match(challenge, new RegExp(`error="${error}"`), `${message}: ${error}`)
}

t.test('a DPoP-bound token with a proof of its key: the claims', async (t) => {
  const { h, dpopToken } = await setup(t)
  const res = await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken))
  t.equal(res.statusCode, 200)
  t.match(res.json(), { sub: /.+/, name: 'Alice Liddell' })
  const post = await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken, { htm: 'POST' }), 'POST')
  t.equal(post.statusCode, 200, 'POST, with a proof for POST')
})

t.test('attacks at /userinfo', async (t) => {
  const { h, dpopToken, bearerToken } = await setup(t)

  t.test('a DPoP-bound token downgraded to Bearer', async (t) => {
    refused(t, await userinfo(h, `Bearer ${dpopToken}`), 'invalid_token', 'downgrade')
    refused(t, await userinfo(h, `Bearer ${dpopToken}`, proof(h, keyA, dpopToken)), 'invalid_token', 'downgrade, even with a proof beside it')
    const body = await h.app.inject({ method: 'POST', url: '/userinfo', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `access_token=${dpopToken}` })
    refused(t, body, 'invalid_token', 'downgrade in the form body')
  })

  t.test('a token bound to A with a proof of B', async (t) => {
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyB, dpopToken)), 'invalid_token', 'key B')
    t.match(await h.deps.metrics.registry.getSingleMetricAsString('gatehouse_dpop_proofs_total'), /outcome="wrong_key"\} 1/)
  })

  t.test('no proof, a replayed proof, a proof of another token, URL or method', async (t) => {
    refused(t, await userinfo(h, `DPoP ${dpopToken}`), 'invalid_dpop_proof', 'no proof')
    const p = proof(h, keyA, dpopToken)
    t.equal((await userinfo(h, `DPoP ${dpopToken}`, p)).statusCode, 200)
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, p), 'invalid_dpop_proof', 'replay')
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, bearerToken)), 'invalid_dpop_proof', 'ath of another token')
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken, { payload: { ath: undefined } })), 'invalid_dpop_proof', 'no ath')
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken, { htu: `${h.config.issuer}/token` })), 'invalid_dpop_proof', 'another URL')
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken, { htm: 'POST' })), 'invalid_dpop_proof', 'another method')
    refused(t, await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken, { iat: h.clock.seconds() - 70 })), 'invalid_dpop_proof', 'stale')
  })

  t.test('a bearer token presented as DPoP', async (t) => {
    refused(t, await userinfo(h, `DPoP ${bearerToken}`, proof(h, keyA, bearerToken)), 'invalid_token', 'an unbound token has no key to prove')
  })

  t.test('an invalid token presented as DPoP: invalid_token, in a DPoP challenge', async (t) => {
    refused(t, await userinfo(h, 'DPoP not.a.token', proof(h, keyA, 'not.a.token')), 'invalid_token', 'bad token')
  })

  t.test('a token of ours whose cnf cannot be read is no token (never served as unbound)', async (t) => {
    const active = h.deps.keys.current().active
    const claims = JSON.parse(Buffer.from(bearerToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
    for (const cnf of [{ jkt: 5 }, 'x', { x5t: 'y' }]) {
      const forged = await new SignJWT({ ...claims, cnf }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: active.kid }).sign(active.privateKey)
      const res = await userinfo(h, `Bearer ${forged}`)
      t.equal(res.statusCode, 401, JSON.stringify(cnf))
    }
  })

  t.test('Bearer requests keep their Bearer challenges', async (t) => {
    const ok = await userinfo(h, `Bearer ${bearerToken}`)
    t.equal(ok.statusCode, 200)
    const none = await userinfo(h, undefined)
    t.equal(none.statusCode, 401)
    t.equal(none.headers['www-authenticate'], 'Bearer realm="gatehouse"')
    const bad = await userinfo(h, 'Bearer not.a.token')
    t.match(bad.headers['www-authenticate'], /^Bearer realm="gatehouse", error="invalid_token"/)
  })
})

t.test('DPOP_REQUIRE_NONCE at /userinfo: 401 use_dpop_nonce with DPoP-Nonce, then 200 with the next one', async (t) => {
  const { h, dpopToken, bearerToken } = await setup(t, { DPOP_REQUIRE_NONCE: 'true' })
  const first = await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken))
  refused(t, first, 'use_dpop_nonce', 'no nonce')
  const nonce = first.headers['dpop-nonce']
  t.type(nonce, 'string')
  const second = await userinfo(h, `DPoP ${dpopToken}`, proof(h, keyA, dpopToken, { nonce: nonce as string }))
  t.equal(second.statusCode, 200)
  t.type(second.headers['dpop-nonce'], 'string')
  t.equal((await userinfo(h, `Bearer ${bearerToken}`)).statusCode, 200, 'Bearer requests need no nonce')
})
