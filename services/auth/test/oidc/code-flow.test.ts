/**
 * The browser flow driven by a certified relying-party library, openid-client v6, with no
 * Gatehouse-specific code on the client side: discovery, authorization URL with PKCE + nonce +
 * state, the login form, code exchange (ID token, nonce, at_hash validated), userinfo, refresh,
 * introspection, revocation, RP-initiated logout. Once on the in-memory store, once on Redis.
 */
import t, { type Test } from 'tap'
import * as oidc from 'openid-client'
import { createHash } from 'node:crypto'
import { decodeProtectedHeader } from 'jose'
import { browserLogin, CookieJar, startRedis } from '@gatehouse/test-harness'
import { startOidcApp, type OidcApp, rejectsWith } from './harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
const AFTER_LOGOUT = 'http://127.0.0.1:3000/'

async function rp(h: OidcApp, clientId = 'web', auth: oidc.ClientAuth = oidc.ClientSecretBasic('web-secret')): Promise<oidc.Configuration> {
  return await oidc.discovery(new URL(h.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] })
}

async function authorizationRequest(config: oidc.Configuration, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email documents:read',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...extra,
  })
  return { url, checks: { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true } }
}

function flow(t: Test, env: () => Record<string, string>) {
  t.test('code flow with PKCE, ID token, userinfo, refresh, introspection, revocation, logout', async (t) => {
    const h = await startOidcApp({ listen: true, env: env() })
    t.teardown(h.close)
    const config = await rp(h)
    const meta = config.serverMetadata()
    t.equal(meta.issuer, h.issuer)
    t.same(meta.code_challenge_methods_supported, ['S256'])
    t.equal(meta.authorization_response_iss_parameter_supported, true)

    // 1. authorization request → login page → redirect with code, state and iss (RFC 9207)
    const jar = new CookieJar()
    const { url, checks } = await authorizationRequest(config)
    const callback = (await browserLogin(url, { jar })).redirect
    t.equal(callback.origin + callback.pathname, REDIRECT_URI)
    t.equal(callback.searchParams.get('state'), checks.expectedState)
    t.equal(callback.searchParams.get('iss'), h.issuer)
    t.ok(jar.cookies.has('gh_session'), 'login session cookie set')

    // 2. code exchange: openid-client validates the ID token (signature, iss, aud, exp, nonce)
    const tokens = await oidc.authorizationCodeGrant(config, callback, checks)
    t.equal(tokens.token_type.toLowerCase(), 'bearer')
    t.type(tokens.refresh_token, 'string')
    const claims = tokens.claims()!
    t.equal(claims.iss, h.issuer)
    t.equal(claims.aud, 'web')
    t.equal(claims.nonce, checks.expectedNonce)
    t.type(claims.auth_time, 'number')
    t.type(claims.sid, 'string')
    const digest = createHash('sha256').update(tokens.access_token).digest()
    t.equal(claims.at_hash, digest.subarray(0, 16).toString('base64url'), 'at_hash binds the access token')
    t.same(decodeProtectedHeader(tokens.id_token!).alg, 'RS256')
    const session = await h.deps.sessions.get(claims.sid as string)
    t.ok(session, "the ID token's sid is the login session")
    t.equal(session!.userId, claims.sub)
    const atClaims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
    t.not(atClaims.sid, claims.sid, "the access token's sid is the refresh family, not the session")
    t.equal((await h.deps.families.get(atClaims.sid as string))?.sessionId, claims.sid, 'the family records its session')

    // 3. userinfo: claims by scope
    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
    t.same(info, { sub: claims.sub, name: 'Alice Liddell', preferred_username: 'alice', email: 'alice@example.com', email_verified: true })

    // 4. refresh (rotation), introspection
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!)
    t.not(refreshed.refresh_token, tokens.refresh_token)
    const active = await oidc.tokenIntrospection(config, refreshed.access_token)
    t.match(active, { active: true, token_type: 'access_token', client_id: 'web', sub: claims.sub, iss: h.issuer, scope: 'openid profile email documents:read' })
    t.match(await oidc.tokenIntrospection(config, refreshed.refresh_token!), { active: true, token_type: 'refresh_token', client_id: 'web' })
    t.same(await oidc.tokenIntrospection(config, tokens.refresh_token!), { active: false }, 'a spent refresh token is inactive')
    t.same(await oidc.tokenIntrospection(config, 'not-a-token'), { active: false })

    // 5. revocation: the family is gone, its access tokens inactive
    await oidc.tokenRevocation(config, refreshed.refresh_token!)
    await rejectsWith(t, oidc.refreshTokenGrant(config, refreshed.refresh_token!), { error: 'invalid_grant' })
    t.same(await oidc.tokenIntrospection(config, refreshed.access_token), { active: false })
    await oidc.tokenRevocation(config, 'unknown-token') // RFC 7009 §2.2: still 200

    // 6. SSO: the live session answers without the form
    const second = await authorizationRequest(config)
    const page = await fetch(second.url, { redirect: 'manual', headers: { cookie: jar.header() } })
    t.equal(page.status, 302, 'no login page while the session lives')
    const again = await oidc.authorizationCodeGrant(config, new URL(page.headers.get('location')!), second.checks)
    t.equal(again.claims()!.sid, claims.sid, 'same login session')
    t.equal(again.claims()!.auth_time, claims.auth_time, 'no new authentication')

    // 7. RP-initiated logout: session ended, its families revoked and announced, cookie cleared,
    //    redirect to the registered post_logout_redirect_uri with state
    const logoutUrl = oidc.buildEndSessionUrl(config, { id_token_hint: again.id_token!, post_logout_redirect_uri: AFTER_LOGOUT, state: 'bye' })
    const out = await fetch(logoutUrl, { redirect: 'manual', headers: { cookie: jar.header() } })
    jar.store(out)
    t.equal(out.status, 303)
    t.equal(out.headers.get('location'), `${AFTER_LOGOUT}?state=bye`)
    t.notOk(jar.cookies.has('gh_session'), 'cookie cleared')
    t.equal(await h.deps.sessions.get(claims.sid as string), null, 'session ended')
    await rejectsWith(t, oidc.refreshTokenGrant(config, again.refresh_token!), { error: 'invalid_grant' }, 'the session family is revoked')
    const againSid = JSON.parse(Buffer.from(again.access_token.split('.')[1]!, 'base64url').toString()).sid as string
    if (!env().REDIS_URL) t.ok(h.published().some((p) => p.sid === againSid), 'the revocation was announced')
    const fresh = await fetch((await authorizationRequest(config)).url, { redirect: 'manual', headers: { cookie: jar.header() } })
    t.equal(fresh.status, 200, 'the login page is back')
    t.ok(h.logs.events('login.succeeded').length === 1 && h.logs.events('logout').length === 1)
  })
}

t.test('in-memory store', async (t) => flow(t, () => ({})))

t.test('Redis store', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  flow(t, () => ({ REDIS_URL: redis.url }))
})

t.test('a public client (PKCE, no secret) gets tokens but may not introspect', async (t) => {
  const h = await startOidcApp({ listen: true })
  t.teardown(h.close)
  const config = await oidc.discovery(new URL(h.issuer), 'spa', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] })
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: 'http://127.0.0.1:3000/spa/callback',
    scope: 'openid profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  })
  const callback = (await browserLogin(url, { username: 'bob', password: 'bob-password' })).redirect
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state })
  t.equal(tokens.claims()!.aud, 'spa')
  t.notOk(tokens.claims()!.nonce, 'no nonce asked, none given')
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!)
  t.type(refreshed.access_token, 'string')
  await rejectsWith(t, oidc.tokenIntrospection(config, refreshed.access_token), { error: 'invalid_client' })
  await oidc.tokenRevocation(config, refreshed.refresh_token!) // RFC 7009 §2.1: public clients may revoke their own tokens
  await rejectsWith(t, oidc.refreshTokenGrant(config, refreshed.refresh_token!), { error: 'invalid_grant' })
})

t.test('max_age and prompt=login force a new authentication; prompt=none never shows a page', async (t) => {
  const h = await startOidcApp({ listen: true })
  t.teardown(h.close)
  const config = await rp(h)
  const jar = new CookieJar()
  const first = await authorizationRequest(config)
  const firstTokens = await oidc.authorizationCodeGrant(config, (await browserLogin(first.url, { jar })).redirect, first.checks)
  const authTime = firstTokens.claims()!.auth_time!

  h.clock.advanceSeconds(120)
  const aged = await authorizationRequest(config, { max_age: '60' })
  const agedPage = await fetch(aged.url, { redirect: 'manual', headers: { cookie: jar.header() } })
  t.equal(agedPage.status, 200, 'session older than max_age: the form again')
  const reauth = await oidc.authorizationCodeGrant(config, (await browserLogin(aged.url, { jar })).redirect, { ...aged.checks, maxAge: 60 })
  t.ok(reauth.claims()!.auth_time! >= authTime + 120, 'auth_time moved')
  t.equal(reauth.claims()!.sid, firstTokens.claims()!.sid, 'same user signing in again keeps the session id')

  const forced = await authorizationRequest(config, { prompt: 'login' })
  t.equal((await fetch(forced.url, { redirect: 'manual', headers: { cookie: jar.header() } })).status, 200, 'prompt=login shows the form')

  const silent = await authorizationRequest(config, { prompt: 'none' })
  const ok = await fetch(silent.url, { redirect: 'manual', headers: { cookie: jar.header() } })
  t.equal(ok.status, 302)
  t.ok(new URL(ok.headers.get('location')!).searchParams.get('code'), 'prompt=none with a session: a code')
  const anonymous = await fetch(silent.url, { redirect: 'manual' })
  t.equal(anonymous.status, 302)
  const back = new URL(anonymous.headers.get('location')!)
  t.equal(back.searchParams.get('error'), 'login_required')
  t.equal(back.searchParams.get('state'), silent.checks.expectedState)
  await rejectsWith(t, oidc.authorizationCodeGrant(config, back, silent.checks), { error: 'login_required' }, 'openid-client reads the error')
})
