/**
 * acr_values and max_age through a certified relying-party library, openid-client v6: it
 * validates the ID token itself (signature, iss, aud, nonce, and with maxAge that auth_time is
 * present and recent enough, OIDC Core §3.1.3.7 item 13); we check the amr/acr it returns, on the
 * code exchange and on refresh (OIDC Core §12.2), and that a weaker session never answers
 * prompt=none for a require_mfa client.
 */
import t from 'tap'
import * as oidc from 'openid-client'
import { sign } from '@fastify/cookie'
import { browserLogin, CookieJar } from '@gatehouse/test-harness'
import { ACR_MFA, ACR_PASSWORD } from '../../src/mfa/assurance.js'
import { startOidcApp, rejectsWith, type OidcApp } from './harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'

async function request(config: oidc.Configuration, extra: Record<string, string>) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', nonce, state, ...extra,
  })
  return { url, checks: { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true } }
}

async function rp(h: OidcApp, clientId: string, secret: string): Promise<oidc.Configuration> {
  return await oidc.discovery(new URL(h.issuer), clientId, undefined, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] })
}

/** A cookie header for a login session of alice with this amr (as the second step will start it). */
async function sessionCookie(h: OidcApp, amr: string[]): Promise<string> {
  const alice = await h.deps.users.findByUsername('alice')
  const { token } = await h.deps.sessions.start({ userId: alice!.id, authTime: h.clock.seconds(), amr })
  return `gh_session=${sign(token, h.config.cookieSecret)}`
}

t.test('openid-client: acr_values and max_age on the code flow and refresh', async (t) => {
  const h = await startOidcApp({
    listen: true,
    clients: [{ client_id: 'mfa-web', client_secret: 'mfa-web-secret', token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'], scope: 'openid profile', audience: 'api://resource', redirect_uris: [REDIRECT_URI], require_mfa: true }],
  })
  t.teardown(h.close)
  const config = await rp(h, 'web', 'web-secret')
  t.same(config.serverMetadata().acr_values_supported, [ACR_PASSWORD, ACR_MFA, 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant'])

  // A password sign-in asked for acr password (preferred) with max_age: openid-client checks auth_time.
  const jar = new CookieJar()
  const first = await request(config, { acr_values: `${ACR_PASSWORD} ${ACR_MFA}`, max_age: '300' })
  const tokens = await oidc.authorizationCodeGrant(config, (await browserLogin(first.url, { jar })).redirect, { ...first.checks, maxAge: 300 })
  const claims = tokens.claims()!
  t.same(claims.amr, ['pwd'])
  t.equal(claims.acr, ACR_PASSWORD)
  t.type(claims.auth_time, 'number')

  // Refresh: openid-client validates the new ID token; it speaks of the same authentication.
  h.clock.advanceSeconds(120)
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!)
  const again = refreshed.claims()!
  t.equal(again.auth_time, claims.auth_time, 'auth_time of the original authentication')
  t.same(again.amr, ['pwd'])
  t.equal(again.acr, ACR_PASSWORD)
  t.equal(again.sub, claims.sub)

  // The session is 120 s old: max_age=60 needs the form again; openid-client accepts the new auth_time.
  const aged = await request(config, { max_age: '60' })
  t.equal((await fetch(aged.url, { redirect: 'manual', headers: { cookie: jar.header() } })).status, 200, 'older than max_age: the form')
  const reauth = await oidc.authorizationCodeGrant(config, (await browserLogin(aged.url, { jar })).redirect, { ...aged.checks, maxAge: 60 })
  t.ok(reauth.claims()!.auth_time! >= claims.auth_time! + 120, 'a new authentication')

  // require_mfa: the password session cannot answer prompt=none; a second-factor session can.
  const mfa = await rp(h, 'mfa-web', 'mfa-web-secret')
  const silent = await request(mfa, { prompt: 'none', max_age: '600' })
  const refused = await fetch(silent.url, { redirect: 'manual', headers: { cookie: jar.header() } })
  t.equal(refused.status, 302)
  await rejectsWith(t, oidc.authorizationCodeGrant(mfa, new URL(refused.headers.get('location')!), silent.checks), { error: 'login_required' }, 'openid-client reads login_required')
  const answered = await fetch(silent.url, { redirect: 'manual', headers: { cookie: await sessionCookie(h, ['pwd', 'otp', 'mfa']) } })
  t.equal(answered.status, 302)
  const strong = await oidc.authorizationCodeGrant(mfa, new URL(answered.headers.get('location')!), { ...silent.checks, maxAge: 600 })
  t.same(strong.claims()!.amr, ['pwd', 'otp', 'mfa'])
  t.equal(strong.claims()!.acr, ACR_MFA)
  const at = JSON.parse(Buffer.from(strong.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
  t.equal(at.acr, ACR_MFA, 'the access token says acr for a require_mfa client')
  t.equal((await oidc.refreshTokenGrant(mfa, strong.refresh_token!)).claims()!.acr, ACR_MFA, 'and so does the refreshed ID token')
})
