/**
 * DESIGN §10.3 all at once, driven by openid-client v6 as it is: a public client that must push its
 * authorization requests (PAR, RFC 9126) and must use DPoP (RFC 9449) asks for two resources
 * (RFC 8707); the DPoP proof sent with the push binds the code to the key (RFC 9449 §10.1), each
 * token request picks one resource, and the refresh family is bound to the key. Then the bindings
 * one by one: a code bound by `dpop_jkt` at /authorize, a push whose `dpop_jkt` is not its proof's
 * key, a plain request from a client that must push. On memory and on Redis.
 */
import t, { type Test } from 'tap'
import * as oidc from 'openid-client'
import { calculateJwkThumbprint, exportJWK } from 'jose'
import { browserLogin, startRedis, type RedisServer } from '@gatehouse/test-harness'
import { rejectsWith, startOidcApp, type OidcApp } from './harness.js'

const DASH_CALLBACK = 'http://127.0.0.1:3000/dash/callback'
const SPA_CALLBACK = 'http://127.0.0.1:3000/spa/callback'

/** A public single-page app held to everything §10.3 offers. */
const DASH = {
  client_id: 'dash',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  scope: 'openid profile documents:read reports:read',
  audience: 'api://resource',
  resources: ['api://reports'],
  redirect_uris: [DASH_CALLBACK],
  require_pushed_authorization_requests: true,
  dpop_bound_access_tokens: true,
}

function payload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

async function rp(h: OidcApp, clientId: string): Promise<oidc.Configuration> {
  return await oidc.discovery(new URL(h.issuer), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] })
}

async function pkce() {
  const verifier = oidc.randomPKCECodeVerifier()
  return { verifier, challenge: await oidc.calculatePKCECodeChallenge(verifier), state: oidc.randomState() }
}

function flows(t: Test, env: () => Record<string, string>) {
  t.test('PAR with a DPoP proof, two resources, one per token, a bound family', async (t) => {
    const h = await startOidcApp({ listen: true, env: env(), clients: [DASH] })
    t.teardown(h.close)
    const config = await rp(h, 'dash')
    const meta = config.serverMetadata()
    t.equal(meta.pushed_authorization_request_endpoint, `${h.issuer}/par`)
    t.ok(meta.dpop_signing_alg_values_supported?.includes('ES256'))

    const keyPair = await oidc.randomDPoPKeyPair('ES256')
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey))
    const DPoP = oidc.getDPoPHandle(config, keyPair)
    const p = await pkce()
    const params = new URLSearchParams({ redirect_uri: DASH_CALLBACK, scope: 'openid documents:read reports:read', code_challenge: p.challenge, code_challenge_method: 'S256', state: p.state })
    params.append('resource', 'api://resource')
    params.append('resource', 'api://reports')
    const url = await oidc.buildAuthorizationUrlWithPAR(config, params, { DPoP })
    t.match(url.searchParams.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/)
    const callback = (await browserLogin(url)).redirect

    // The code is bound to the key of the push's proof: another key cannot exchange it.
    const thief = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'))
    const stolen = (await browserLogin(await oidc.buildAuthorizationUrlWithPAR(config, params, { DPoP }))).redirect
    await rejectsWith(t, oidc.authorizationCodeGrant(config, stolen, { pkceCodeVerifier: p.verifier, expectedState: p.state }, undefined, { DPoP: thief }), { error: 'invalid_dpop_proof' })

    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: p.verifier, expectedState: p.state }, { resource: 'api://reports' }, { DPoP })
    t.equal(tokens.token_type, 'dpop')
    const at = payload(tokens.access_token)
    t.match(at, { aud: 'api://reports', cnf: { jkt }, client_id: 'dash' })
    t.same((at.scope as string).split(' ').sort(), ['openid', 'reports:read'], "another resource's scopes stay out")
    t.equal((await h.deps.families.get(at.sid as string))?.jkt, jkt, 'the public client family is bound to the key')
    t.same((await h.deps.families.get(at.sid as string))?.resources, ['api://resource', 'api://reports'])

    // A refresh narrows to the other resource, with the same key.
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: 'api://resource' }, { DPoP })
    t.match(payload(refreshed.access_token), { aud: 'api://resource', cnf: { jkt } })
    t.same((payload(refreshed.access_token).scope as string).split(' ').sort(), ['documents:read', 'openid'])
    await rejectsWith(t, oidc.refreshTokenGrant(config, refreshed.refresh_token!, { resource: 'api://elsewhere' }, { DPoP }), { error: 'invalid_target' })
    await rejectsWith(t, oidc.refreshTokenGrant(config, refreshed.refresh_token!, undefined, { DPoP: thief }), { error: 'invalid_grant' })
    const again = await oidc.refreshTokenGrant(config, refreshed.refresh_token!, undefined, { DPoP })
    t.equal(payload(again.access_token).aud, 'api://resource', 'refused refreshes spent nothing')
    t.equal((await oidc.fetchUserInfo(config, again.access_token, tokens.claims()!.sub, { DPoP })).sub, tokens.claims()!.sub)
  })

  t.test('a client that must push: a plain authorization request is sent back with invalid_request', async (t) => {
    const h = await startOidcApp({ listen: true, env: env(), clients: [DASH] })
    t.teardown(h.close)
    const config = await rp(h, 'dash')
    const p = await pkce()
    const plain = oidc.buildAuthorizationUrl(config, { redirect_uri: DASH_CALLBACK, scope: 'openid', code_challenge: p.challenge, code_challenge_method: 'S256', state: p.state })
    const res = await fetch(plain, { redirect: 'manual' })
    t.equal(res.status, 302)
    const back = new URL(res.headers.get('location')!)
    t.equal(back.origin + back.pathname, DASH_CALLBACK)
    t.equal(back.searchParams.get('error'), 'invalid_request')
    t.equal(back.searchParams.get('state'), p.state)
  })

  t.test('a push whose dpop_jkt is not the key of its proof is refused (RFC 9449 §10.1)', async (t) => {
    const h = await startOidcApp({ listen: true, env: env(), clients: [DASH] })
    t.teardown(h.close)
    const config = await rp(h, 'dash')
    const DPoP = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'))
    const other = await calculateJwkThumbprint(await exportJWK((await oidc.randomDPoPKeyPair('ES256')).publicKey))
    const p = await pkce()
    const params = { redirect_uri: DASH_CALLBACK, scope: 'openid', code_challenge: p.challenge, code_challenge_method: 'S256', dpop_jkt: other }
    await rejectsWith(t, oidc.buildAuthorizationUrlWithPAR(config, params, { DPoP }), { error: 'invalid_dpop_proof' })
  })

  t.test('dpop_jkt at /authorize binds the code: no proof or another key cannot exchange it', async (t) => {
    const h = await startOidcApp({ listen: true, env: env() })
    t.teardown(h.close)
    const config = await rp(h, 'spa')
    const keyPair = await oidc.randomDPoPKeyPair('ES256')
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey))
    const DPoP = oidc.getDPoPHandle(config, keyPair)
    const login = async () => {
      const p = await pkce()
      const url = oidc.buildAuthorizationUrl(config, { redirect_uri: SPA_CALLBACK, scope: 'openid', code_challenge: p.challenge, code_challenge_method: 'S256', state: p.state, dpop_jkt: jkt })
      return { p, callback: (await browserLogin(url, { username: 'bob', password: 'bob-password' })).redirect }
    }
    const a = await login()
    await rejectsWith(t, oidc.authorizationCodeGrant(config, a.callback, { pkceCodeVerifier: a.p.verifier, expectedState: a.p.state }), { error: 'invalid_dpop_proof' }, 'no proof')
    const b = await login()
    const thief = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'))
    await rejectsWith(t, oidc.authorizationCodeGrant(config, b.callback, { pkceCodeVerifier: b.p.verifier, expectedState: b.p.state }, undefined, { DPoP: thief }), { error: 'invalid_dpop_proof' }, 'another key')
    const c = await login()
    const tokens = await oidc.authorizationCodeGrant(config, c.callback, { pkceCodeVerifier: c.p.verifier, expectedState: c.p.state }, undefined, { DPoP })
    t.match(payload(tokens.access_token), { cnf: { jkt } })
  })
}

t.test('in-memory store', async (t) => flows(t, () => ({})))

t.test('Redis store', async (t) => {
  let redis: RedisServer | undefined
  t.before(async () => {
    redis = await startRedis()
  })
  t.teardown(() => redis?.stop())
  flows(t, () => ({ REDIS_URL: redis!.url }))
})
