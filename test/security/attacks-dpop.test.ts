/**
 * DPoP attack regressions at the auth service (RFC 9449; DESIGN §10.3), through the browser flow
 * and /token as an attacker would drive them: a stolen DPoP-bound token or refresh token without
 * its key, proofs replayed, redirected or forged, and a bad proof that must spend nothing (the
 * code it came with still exchanges). The checks beside the code: services/auth/test/dpop/.
 */
import t from 'tap'
import { dpopProof, makeDpopKey, type DpopKey, type DpopProofInput } from '@gatehouse/test-harness'
import { basic, browserLogin, exchangeCode, FORM, form, startOidcApp, type OidcApp } from './auth-fixture.js'

const keyA = makeDpopKey('ES256')
const keyB = makeDpopKey('ES256')
const SPA = { client_id: 'spa', redirect_uri: 'http://127.0.0.1:3000/spa/callback', scope: 'openid profile' }

function proof(h: OidcApp, key: DpopKey, over: Partial<DpopProofInput> = {}): string {
  return dpopProof({ key, htm: 'POST', htu: `${h.config.issuer}/token`, iat: Math.floor(h.clock.now() / 1000), ...over })
}

async function token(h: OidcApp, params: Record<string, string>, dpop: string | undefined, auth: string | null) {
  const headers: Record<string, string> = { ...FORM }
  if (auth !== null) headers.authorization = auth
  if (dpop !== undefined) headers.dpop = dpop
  return await h.app.inject({ method: 'POST', url: '/token', headers, payload: form(params) })
}

t.test('DPoP attacks at /token and /userinfo', async (t) => {
  const h = await startOidcApp({
    clients: [{ client_id: 'dpop-only', token_endpoint_auth_method: 'client_secret_basic', client_secret: 'dpop-only-secret', grant_types: ['client_credentials'], scope: 'internal:read', audience: 'api://resource', dpop_bound_access_tokens: true }],
  })
  t.teardown(h.close)
  const svc = basic('reporting-service', 'reporting-secret')
  const cc = { grant_type: 'client_credentials' }
  const now = () => Math.floor(h.clock.now() / 1000)

  t.test('forged, replayed and misdirected proofs are invalid_dpop_proof', async (t) => {
    const privateJwk = keyA.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
    const cases: [string, string][] = [
      ['proof for another URL', proof(h, keyA, { htu: `${h.config.issuer}/revoke` })],
      ['proof for another method', proof(h, keyA, { htm: 'GET' })],
      ['stale iat', proof(h, keyA, { iat: now() - 120 })],
      ['future iat', proof(h, keyA, { iat: now() + 120 })],
      ['alg none', `${proof(h, keyA, { header: { alg: 'none' } }).split('.').slice(0, 2).join('.')}.`],
      ['HS256', proof(h, keyA, { header: { alg: 'HS256' } })],
      ['a private key in jwk', proof(h, keyA, { header: { jwk: privateJwk } })],
      ['jwk of one key, signed by another', proof(h, keyA, { signer: keyB })],
    ]
    for (const [name, p] of cases) {
      const res = await token(h, cc, p, svc)
      t.equal(res.statusCode, 400, name)
      t.equal(res.json().error, 'invalid_dpop_proof', name)
    }
    const once = proof(h, keyA)
    t.equal((await token(h, cc, once, svc)).statusCode, 200)
    t.equal((await token(h, cc, once, svc)).json().error, 'invalid_dpop_proof', 'the same proof twice')
  })

  t.test('a client registered with dpop_bound_access_tokens gets no bearer token', async (t) => {
    const res = await token(h, cc, undefined, basic('dpop-only', 'dpop-only-secret'))
    t.equal(res.statusCode, 400)
    t.equal(res.json().error, 'invalid_dpop_proof')
  })

  t.test('a bad proof at the code exchange spends no code', async (t) => {
    const { code } = await browserLogin(h)
    const bad = await token(h, { grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:3000/callback', code_verifier: 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk' }, proof(h, keyA, { htm: 'GET' }), basic('web', 'web-secret'))
    t.equal(bad.json().error, 'invalid_dpop_proof')
    const good = await exchangeCode(h, code)
    t.equal(good.statusCode, 200, 'the code still exchanges')
  })

  t.test("a public client's refresh token without its key: refused, nothing spent, the key still works", async (t) => {
    const { code } = await browserLogin(h, SPA)
    const first = await exchangeCode(h, code, { client_id: 'spa', redirect_uri: SPA.redirect_uri }, null)
    t.equal(first.statusCode, 200, 'a Bearer exchange still works for the spa (no dpop_bound_access_tokens)')
    // Bind a family: exchange a second code with a proof of A.
    const login2 = await browserLogin(h, SPA)
    const bound = await h.app.inject({
      method: 'POST', url: '/token', headers: { ...FORM, dpop: proof(h, keyA) },
      payload: form({ grant_type: 'authorization_code', code: login2.code, redirect_uri: SPA.redirect_uri, code_verifier: 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk', client_id: 'spa' }),
    })
    t.equal(bound.json().token_type, 'DPoP')
    const rt = bound.json().refresh_token as string
    const before = await h.deps.families.lookup(rt)

    const withB = await token(h, { grant_type: 'refresh_token', refresh_token: rt, client_id: 'spa' }, proof(h, keyB), null)
    t.equal(withB.json().error, 'invalid_grant', 'a proof of key B')
    const without = await token(h, { grant_type: 'refresh_token', refresh_token: rt, client_id: 'spa' }, undefined, null)
    t.equal(without.json().error, 'invalid_dpop_proof', 'no proof')
    t.same(await h.deps.families.lookup(rt), before, 'neither spent nor revoked')
    const withA = await token(h, { grant_type: 'refresh_token', refresh_token: rt, client_id: 'spa' }, proof(h, keyA), null)
    t.equal(withA.statusCode, 200, 'key A still rotates the same token')

    // The access token: not as Bearer, not with a proof of B.
    const at = withA.json().access_token as string
    const ui = (authorization: string, key?: DpopKey) =>
      h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization, ...(key ? { dpop: dpopProof({ key, htm: 'GET', htu: `${h.config.issuer}/userinfo`, iat: now(), accessToken: at }) } : {}) } })
    const downgraded = await ui(`Bearer ${at}`)
    t.equal(downgraded.statusCode, 401, 'downgraded to Bearer')
    t.match(downgraded.headers['www-authenticate'], /^DPoP algs=.*error="invalid_token"/)
    const otherKey = await ui(`DPoP ${at}`, keyB)
    t.equal(otherKey.statusCode, 401, 'a proof of key B')
    t.equal((await ui(`DPoP ${at}`, keyA)).statusCode, 200, 'key A')
  })
})
