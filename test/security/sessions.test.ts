/**
 * Attack regressions for login sessions (issue 12, findings 1, 2, 4, 5; DESIGN §10.1): a stolen
 * session cookie after a password change, logout without the user's consent, a refused refresh
 * that spent the token, and access tokens no revocation could reach.
 */
import t from 'tap'
import { s256, type Admin, type SessionEnded } from '../../services/auth/src/index.js'
import { parseLogoutForm } from '../../services/auth/test/oidc/harness.js'
import { adminOf, authorizeQuery, basic, browserLogin, claimsOf, cookiesOf, exchangeCode, form, FORM, type OidcApp, postForm, REDIRECT_URI, startOidcApp, VERIFIER, WEB } from './auth-fixture.js'

const SPA_REDIRECT = 'http://127.0.0.1:3000/spa/callback'


/** Records what the back-channel is told (the real delivery is another module's). */
function recordBackchannel(h: OidcApp): SessionEnded[] {
  const told: SessionEnded[] = []
  h.deps.backchannel = { sessionEnded: async (e) => void told.push(e) }
  return told
}

/** /authorize for the public `spa` client with the stolen cookie: a code (SSO) or the login page. */
async function spaAuthorize(h: OidcApp, cookies: Record<string, string>) {
  const q = authorizeQuery({ client_id: 'spa', redirect_uri: SPA_REDIRECT, scope: 'openid documents:read' })
  return await h.app.inject({ method: 'GET', url: `/authorize?${q}`, cookies })
}

async function spaExchange(h: OidcApp, location: string) {
  const code = new URL(location).searchParams.get('code')!
  return await postForm(h, '/token', { grant_type: 'authorization_code', code, redirect_uri: SPA_REDIRECT, code_verifier: VERIFIER, client_id: 'spa' }, null)
}

for (const [verb, act] of [
  ['users set-password', (a: Admin) => a.setPassword('alice', 'a-brand-new-password')],
  ['users disable', (a: Admin) => a.disableUser('alice')],
  ['sessions revoke --user (sign out everywhere)', (a: Admin) => a.revokeUserSessions('alice')],
] as const) {
  t.test(`finding 1: after ${verb} a stolen session cookie mints nothing, and every token dies`, async (t) => {
    const h = await startOidcApp()
    t.teardown(h.close)
    const told = recordBackchannel(h)
    const login = await browserLogin(h)
    const web = (await exchangeCode(h, login.code)).json()
    // The thief's copy of the cookie works before: SSO through the public client.
    const before = await spaAuthorize(h, login.session)
    t.equal(before.statusCode, 302)
    const spa = (await spaExchange(h, before.headers.location as string)).json()
    t.ok(spa.refresh_token)

    const { sessions, revoked } = await act(adminOf(h))
    t.equal(sessions.length, 1, 'the login session is ended')
    t.equal(revoked.length, 2)

    const after = await spaAuthorize(h, login.session)
    t.equal(after.statusCode, 200, 'the old cookie gets the login page')
    t.match(after.body, /name="password"/)
    t.notOk(after.headers.location)
    t.equal((await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: web.refresh_token }, WEB)).json().error, 'invalid_grant')
    t.equal((await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: spa.refresh_token, client_id: 'spa' }, null)).json().error, 'invalid_grant')
    const published = h.published().map((p) => p.sid)
    for (const at of [web.access_token, spa.access_token]) t.ok(published.includes(claimsOf(at).sid as string), 'the access token is announced dead (DESIGN §6)')
    t.same(told, [{ sid: claimsOf(web.id_token).sid, sub: claimsOf(web.id_token).sub, clientIds: ['web', 'spa'] }], 'the clients of the session are told')
  })
}

t.test('finding 2: no logout without consent; an ID token alone ends no session', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const alice = await browserLogin(h)
  const aliceTokens = (await exchangeCode(h, alice.code)).json()
  const aliceSid = claimsOf(aliceTokens.id_token).sid as string

  // A cross-site page sends the browser to /logout (an <img>, a link, a form): the user is asked.
  for (const req of [
    { method: 'GET' as const, url: '/logout', cookies: alice.session },
    { method: 'GET' as const, url: '/logout?client_id=web&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2F', cookies: alice.session },
    { method: 'POST' as const, url: '/logout', headers: FORM, payload: form({ client_id: 'web' }), cookies: alice.session },
  ]) {
    const res = await h.app.inject(req)
    t.equal(res.statusCode, 200, `${req.method} ${req.url}: a confirmation page`)
    t.ok(parseLogoutForm(res.body))
    t.notOk(res.headers.location)
    t.ok(await h.deps.sessions.get(aliceSid), 'still signed in')
  }

  // Alice's ID token (leaked, expired, or sent by another client) without her cookie ends nothing...
  h.clock.advanceSeconds(7200)
  const noCookie = await h.app.inject({ method: 'GET', url: `/logout?id_token_hint=${aliceTokens.id_token}` })
  t.equal(noCookie.statusCode, 200)
  t.ok(await h.deps.sessions.get(aliceSid), 'an ID token alone never ends a session')
  // ...nor in the attacker's own browser session: the hint does not name it, so the attacker is asked about their own.
  const bob = await browserLogin(h, {}, 'bob-password', 'bob')
  const inBobsBrowser = await h.app.inject({ method: 'GET', url: `/logout?id_token_hint=${aliceTokens.id_token}`, cookies: bob.session })
  t.equal(inBobsBrowser.statusCode, 200)
  t.ok(parseLogoutForm(inBobsBrowser.body))
  t.ok(await h.deps.sessions.get(aliceSid), "alice's session lives")
  const families = await h.deps.families.listByUser(claimsOf(aliceTokens.id_token).sub as string)
  t.equal(families.length, 1, "alice's family lives")

  // A forged confirmation (no pending-logout cookie, or a wrong CSRF token) ends nothing.
  const pending = cookiesOf(inBobsBrowser)
  const fields = parseLogoutForm(inBobsBrowser.body)
  t.equal((await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ ...fields, action: 'logout' }), cookies: alice.session })).statusCode, 400)
  t.equal((await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ ...fields, csrf: 'A'.repeat(43), action: 'logout' }), cookies: { ...bob.session, ...pending } })).statusCode, 403)
  t.ok(await h.deps.sessions.get(aliceSid))

  // Alice's own RP, with her ID token and her browser: at once.
  const own = await h.app.inject({ method: 'GET', url: `/logout?id_token_hint=${aliceTokens.id_token}`, cookies: alice.session })
  t.equal(own.statusCode, 200)
  t.match(own.body, /You have been signed out/)
  t.equal(await h.deps.sessions.get(aliceSid), null)
})

t.test('finding 4: a refresh refused for its scope spends nothing', async (t) => {
  const h = await startOidcApp({ env: { REFRESH_REUSE_GRACE: '0' } })
  t.teardown(h.close)
  const login = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid documents:read' })).json()
  for (const scope of ['documents:write', 'openid admin', ' ']) {
    const refused = await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: login.refresh_token, scope })
    t.equal(refused.statusCode, 400)
    t.equal(refused.json().error, 'invalid_scope', JSON.stringify(scope))
  }
  h.clock.advanceSeconds(60)
  const retry = await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: login.refresh_token, scope: 'documents:read' })
  t.equal(retry.statusCode, 200, 'the same token still works: no rotation happened, so no reuse')
  t.equal(retry.json().scope, 'documents:read')
  t.equal(h.logs.events('refresh_token.reuse_detected').length, 0)
})

t.test('finding 5: a code exchange without a refresh token still yields a revocable sid (code replay, logout)', async (t) => {
  const h = await startOidcApp({ clients: [{ client_id: 'noref', client_secret: 'noref-secret-noref', grant_types: ['authorization_code'], scope: 'openid documents:read', redirect_uris: [REDIRECT_URI] }] })
  t.teardown(h.close)
  const NOREF = basic('noref', 'noref-secret-noref')
  const extra = { client_id: 'noref', scope: 'openid documents:read', code_challenge: s256(VERIFIER) }
  const first = await browserLogin(h, extra)
  const tokens = (await exchangeCode(h, first.code, {}, NOREF)).json()
  t.notOk(tokens.refresh_token)
  const sid = claimsOf(tokens.access_token).sid as string
  t.match(sid, /^[A-Za-z0-9_-]{22}$/, 'the access token carries a sid')
  // A replayed code revokes what the first use issued, and announces it.
  t.equal((await exchangeCode(h, first.code, {}, NOREF)).json().error, 'invalid_grant')
  t.ok(h.published().some((p) => p.sid === sid), 'the replay reaches the access token')

  // Logout reaches it too.
  const q = new URLSearchParams({ response_type: 'code', client_id: 'noref', redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: s256(VERIFIER), code_challenge_method: 'S256' })
  const sso = await h.app.inject({ method: 'GET', url: `/authorize?${q}`, cookies: first.session })
  const code2 = new URL(sso.headers.location as string).searchParams.get('code')!
  const second = (await exchangeCode(h, code2, {}, NOREF)).json()
  const sid2 = claimsOf(second.access_token).sid as string
  await h.app.inject({ method: 'GET', url: `/logout?id_token_hint=${second.id_token}`, cookies: first.session })
  t.ok(h.published().some((p) => p.sid === sid2), 'logout reaches the access token')
})
