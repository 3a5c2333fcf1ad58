/**
 * DPoP end to end with openid-client v6 as it is (no Gatehouse code on the client side): discovery
 * finds `dpop_signing_alg_values_supported`; the code flow of the public client `spa`, its refresh
 * and userinfo run with a DPoP handle; client_credentials too; and with DPOP_REQUIRE_NONCE the
 * library's own retry on use_dpop_nonce gets through. On memory and on Redis.
 */
import t, { type Test } from 'tap'
import * as oidc from 'openid-client'
import { calculateJwkThumbprint, exportJWK } from 'jose'
import { browserLogin, startRedis, type RedisServer } from '@gatehouse/test-harness'
import { rejectsWith, startOidcApp, type OidcApp } from '../oidc/harness.js'
import { jwtPayload } from './helpers.js'

const SPA_CALLBACK = 'http://127.0.0.1:3000/spa/callback'

async function spaLogin(h: OidcApp, config: oidc.Configuration, DPoP: oidc.DPoPHandle) {
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: SPA_CALLBACK,
    scope: 'openid profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  })
  const callback = (await browserLogin(url, { username: 'bob', password: 'bob-password' })).redirect
  return await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }, undefined, { DPoP })
}

function flows(t: Test, env: () => Record<string, string>) {
  t.test('public client: code flow, refresh and userinfo with DPoP; the family is bound to the key', async (t) => {
    const h = await startOidcApp({ listen: true, env: env() })
    t.teardown(h.close)
    const config = await oidc.discovery(new URL(h.issuer), 'spa', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] })
    t.same(config.serverMetadata().dpop_signing_alg_values_supported, ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'])
    const keyPair = await oidc.randomDPoPKeyPair('ES256')
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey))
    const DPoP = oidc.getDPoPHandle(config, keyPair)

    const tokens = await spaLogin(h, config, DPoP)
    t.equal(tokens.token_type, 'dpop')
    t.same(jwtPayload(tokens.access_token).cnf, { jkt })
    const sid = jwtPayload(tokens.access_token).sid as string
    t.equal((await h.deps.families.get(sid))?.jkt, jkt, "the public client's family is bound to the first proof's key")

    const info = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub, { DPoP })
    t.equal(info.name, 'Bob Builder')
    await rejectsWith(t, oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub), { status: 401 }, 'the bound token without its proof')

    // Another key, or none: refused, nothing spent.
    const other = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('Ed25519'))
    await rejectsWith(t, oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP: other }), { error: 'invalid_grant' })
    await rejectsWith(t, oidc.refreshTokenGrant(config, tokens.refresh_token!), { error: 'invalid_dpop_proof' })
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP })
    t.equal(refreshed.token_type, 'dpop')
    t.same(jwtPayload(refreshed.access_token).cnf, { jkt })
    t.equal((await oidc.fetchUserInfo(config, refreshed.access_token, tokens.claims()!.sub, { DPoP })).sub, tokens.claims()!.sub)
  })

  t.test('client_credentials with DPoP (Ed25519, as openid-client signs it)', async (t) => {
    const h = await startOidcApp({ listen: true, env: env() })
    t.teardown(h.close)
    const config = await oidc.discovery(new URL(h.issuer), 'reporting-service', undefined, oidc.ClientSecretBasic('reporting-secret'), { execute: [oidc.allowInsecureRequests] })
    const keyPair = await oidc.randomDPoPKeyPair('Ed25519')
    const DPoP = oidc.getDPoPHandle(config, keyPair)
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'internal:read' }, { DPoP })
    t.equal(tokens.token_type, 'dpop')
    t.same(jwtPayload(tokens.access_token).cnf, { jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)) })
    t.match(await oidc.tokenIntrospection(config, tokens.access_token), { active: true, token_type: 'DPoP' })
  })

  t.test('DPOP_REQUIRE_NONCE: openid-client retries on use_dpop_nonce by itself, at /token and /userinfo', async (t) => {
    const h = await startOidcApp({ listen: true, env: { ...env(), DPOP_REQUIRE_NONCE: 'true' } })
    t.teardown(h.close)
    const config = await oidc.discovery(new URL(h.issuer), 'spa', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] })
    const DPoP = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'))
    const tokens = await spaLogin(h, config, DPoP)
    t.equal(tokens.token_type, 'dpop')
    t.equal((await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub, { DPoP })).name, 'Bob Builder')
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP })
    t.equal(refreshed.token_type, 'dpop')
    t.match(await h.deps.metrics.registry.getSingleMetricAsString('gatehouse_dpop_proofs_total'), /outcome="use_nonce"\} [1-9]/, 'the first proof was asked for a nonce')
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
