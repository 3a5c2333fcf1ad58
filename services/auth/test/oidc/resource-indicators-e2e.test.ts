/**
 * Resource indicators end to end (RFC 8707; DESIGN §10.3): two resource services built from
 * services/resource, one per audience (`api://resource`, `api://reports`), find the auth
 * service's keys through discovery as in production. A relying party on openid-client v6, with
 * no Gatehouse-specific code, asks /authorize for both resources and each token for one; a
 * token works at its own resource service and is refused (401 invalid_token) at the other; a
 * refresh narrows to each in turn.
 */
import t from 'tap'
import * as oidc from 'openid-client'
import { browserLogin } from '@gatehouse/test-harness'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '../../../resource/src/index.js'
import { DASH_SCOPE, REDIRECT_URI, REPORTS, RESOURCE, startResourceApp } from './resource-fixture.js'
import { rejectsWith } from './harness.js'

t.test('two resource services, one client allowed both: each token works at its own audience only', async (t) => {
  const auth = await startResourceApp({ listen: true })
  t.teardown(auth.close)
  const services = new Map<string, ReturnType<typeof buildResource>>()
  for (const audience of [RESOURCE, REPORTS]) {
    const app = buildResource(loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE: audience, LOG_LEVEL: 'silent' }), { logStream: false })
    t.teardown(() => app.close())
    await app.ready()
    services.set(audience, app)
  }
  const me = async (audience: string, token: string) =>
    await services.get(audience)!.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })
  /** The token is accepted by its own service and refused, as a bad token, by the other. */
  const worksOnlyAt = async (token: string, own: string, label: string) => {
    const other = own === RESOURCE ? REPORTS : RESOURCE
    const ok = await me(own, token)
    t.equal(ok.statusCode, 200, `${label}: accepted at ${own}`)
    const refused = await me(other, token)
    t.equal(refused.statusCode, 401, `${label}: refused at ${other}`)
    t.match(refused.headers['www-authenticate'], /error="invalid_token"/)
  }

  const config = await oidc.discovery(new URL(auth.issuer), 'dash', undefined, oidc.ClientSecretBasic('dash-secret'), { execute: [oidc.allowInsecureRequests] })
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const params = new URLSearchParams({
    redirect_uri: REDIRECT_URI,
    scope: DASH_SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  })
  params.append('resource', RESOURCE)
  params.append('resource', REPORTS)
  const url = oidc.buildAuthorizationUrl(config, params)
  t.same(url.searchParams.getAll('resource'), [RESOURCE, REPORTS], 'openid-client sends both')
  const callback = (await browserLogin(url)).redirect
  const checks = { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true }

  const tokens = await oidc.authorizationCodeGrant(config, callback, checks, { resource: REPORTS })
  t.equal(tokens.claims()?.aud, 'dash', 'the ID token is still for the client')
  t.equal(tokens.scope, 'openid profile email reports:read')
  await worksOnlyAt(tokens.access_token, REPORTS, 'code exchange for api://reports')

  let refreshToken = tokens.refresh_token!
  for (const audience of [RESOURCE, REPORTS, RESOURCE]) {
    const next = await oidc.refreshTokenGrant(config, refreshToken, { resource: audience })
    await worksOnlyAt(next.access_token, audience, `refresh narrowed to ${audience}`)
    refreshToken = next.refresh_token!
  }
  await rejectsWith(t, oidc.refreshTokenGrant(config, refreshToken, { resource: 'api://elsewhere' }), { error: 'invalid_target' }, 'openid-client surfaces invalid_target')
  const after = await oidc.refreshTokenGrant(config, refreshToken)
  await worksOnlyAt(after.access_token, RESOURCE, 'the refused refresh spent nothing; no resource: the default')

  const documents = await services.get(RESOURCE)!.inject({ method: 'GET', url: '/documents', headers: { authorization: `Bearer ${after.access_token}` } })
  t.equal(documents.statusCode, 200, "api://resource's own scope works there")
})
