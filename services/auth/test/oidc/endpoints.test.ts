/**
 * /userinfo (OIDC Core §5.3, RFC 6750 errors), /revoke (RFC 7009), /introspect (RFC 7662),
 * /logout (OIDC RP-Initiated Logout 1.0) and the discovery document, through app.inject.
 */
import t from 'tap'
import { generateKeyPair, SignJWT } from 'jose'
import { s256 } from '../../src/authorize/pkce.js'
import { basic, form } from '../helpers.js'
import { parseLoginForm, parseLogoutForm, startOidcApp, type OidcApp } from './harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
const WEB = basic('web', 'web-secret')
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

interface Login {
  tokens: { access_token: string; refresh_token: string; id_token: string; scope: string }
  cookies: Record<string, string>
  familyId: string
  sessionId: string
}

/** Browser login as `username` for `web`, code exchanged. */
async function login(h: OidcApp, username = 'alice', scope = 'openid profile email documents:read'): Promise<Login> {
  const q = new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: REDIRECT_URI, scope, code_challenge: s256(VERIFIER), code_challenge_method: 'S256' })
  const page = await h.app.inject({ method: 'GET', url: `/authorize?${q}` })
  const res = await h.app.inject({
    method: 'POST', url: '/login', headers: FORM,
    payload: form({ ...parseLoginForm(page.body), username, password: `${username}-password` }),
    cookies: Object.fromEntries(page.cookies.map((c) => [c.name, c.value])),
  })
  const code = new URL(res.headers.location as string).searchParams.get('code')!
  const tok = await h.app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: WEB }, payload: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER }) })
  const tokens = tok.json()
  return {
    tokens,
    cookies: Object.fromEntries(res.cookies.filter((c) => c.value !== '').map((c) => [c.name, c.value])),
    familyId: claimsOf(tokens.access_token).sid as string,
    sessionId: claimsOf(tokens.id_token).sid as string,
  }
}

async function userinfo(h: OidcApp, token: string | undefined, method: 'GET' | 'POST' = 'GET') {
  return await h.app.inject({ method, url: '/userinfo', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
}

async function post(h: OidcApp, path: string, params: Record<string, string>, auth: string | null = WEB) {
  return await h.app.inject({ method: 'POST', url: path, headers: auth ? { ...FORM, authorization: auth } : FORM, payload: form(params) })
}

t.test('userinfo: claims by scope; RFC 6750 errors with WWW-Authenticate', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const alice = await login(h)
  const ok = await userinfo(h, alice.tokens.access_token)
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers['cache-control'], 'no-store')
  t.same(ok.json(), { sub: claimsOf(alice.tokens.access_token).sub, name: 'Alice Liddell', preferred_username: 'alice', email: 'alice@example.com', email_verified: true })
  const viaPost = await h.app.inject({ method: 'POST', url: '/userinfo', headers: FORM, payload: form({ access_token: alice.tokens.access_token }) })
  t.same(viaPost.json(), ok.json(), 'POST with the token in the form body (RFC 6750 §2.2)')
  t.same((await userinfo(h, alice.tokens.access_token, 'POST')).json(), ok.json())

  const openidOnly = await login(h, 'bob', 'openid')
  t.same((await userinfo(h, openidOnly.tokens.access_token)).json(), { sub: claimsOf(openidOnly.tokens.access_token).sub }, 'openid alone: only sub')

  const none = await userinfo(h, undefined)
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="gatehouse"', 'no error code when no token was sent (§3.1)')

  for (const [name, token] of Object.entries({
    garbage: 'abc.def.ghi',
    'an ID token': alice.tokens.id_token,
    'a refresh token': alice.tokens.refresh_token,
  })) {
    const res = await userinfo(h, token)
    t.equal(res.statusCode, 401, name)
    t.match(res.headers['www-authenticate'], /^Bearer realm="gatehouse", error="invalid_token", error_description="[^"]+"$/, name)
    t.equal(res.json().error, 'invalid_token')
  }
  const { privateKey } = await generateKeyPair('RS256')
  const forged = await new SignJWT({ ...claimsOf(alice.tokens.access_token) })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: h.deps.keys.current().active.kid })
    .sign(privateKey)
  t.equal((await userinfo(h, forged)).statusCode, 401, 'signed by another key under our kid')

  const pw = await post(h, '/token', { grant_type: 'password', username: 'bob', password: 'bob-password', scope: 'documents:read' }, basic('cli', 'cli-secret'))
  const noOpenid = await userinfo(h, pw.json().access_token)
  t.equal(noOpenid.statusCode, 403)
  t.equal(noOpenid.headers['www-authenticate'], 'Bearer realm="gatehouse", error="insufficient_scope", error_description="the access token lacks the openid scope", scope="openid"')
  const svc = await post(h, '/token', { grant_type: 'client_credentials' }, basic('reporting-service', 'reporting-secret'))
  t.equal((await userinfo(h, svc.json().access_token)).statusCode, 403, 'a service token has no openid scope')

  const both = await h.app.inject({ method: 'POST', url: '/userinfo', headers: { ...FORM, authorization: `Bearer ${alice.tokens.access_token}` }, payload: form({ access_token: alice.tokens.access_token }) })
  t.equal(both.statusCode, 400)
  t.equal(both.json().error, 'invalid_request')
  const basicAuth = await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: WEB } })
  t.equal(basicAuth.statusCode, 400)
  t.match(basicAuth.headers['www-authenticate'], /error="invalid_request"/)
  // The shared RFC 6750 §2.1 parser (service-kit): the scheme in any case, one space, one b64token.
  t.equal((await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: `bEaReR ${alice.tokens.access_token}` } })).statusCode, 200, 'scheme case-insensitive')
  t.equal((await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: `Bearer   ${alice.tokens.access_token}` } })).statusCode, 200, 'RFC 6750 §2.1: 1*SP between the scheme and the token')
  for (const bad of ['Bearer', 'Bearer ', 'Bearer   ', `Bearer ${alice.tokens.access_token} x`, 'Bearer a"b', 'Bearer é']) {
    const res = await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: bad } })
    t.equal(res.statusCode, 400, JSON.stringify(bad.slice(0, 12)))
    t.equal(res.headers['www-authenticate'], 'Bearer realm="gatehouse", error="invalid_request", error_description="the Authorization header must be Bearer <token> or DPoP <token>"')
  }

  await post(h, '/revoke', { token: alice.tokens.refresh_token })
  t.equal((await userinfo(h, alice.tokens.access_token)).statusCode, 401, 'the family was revoked')
  h.clock.advanceSeconds(901)
  t.equal((await userinfo(h, openidOnly.tokens.access_token)).statusCode, 401, 'expired')
})

t.test('revoke: refresh and access tokens revoke their family; other clients, unknown tokens: 200 and nothing', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const a = await login(h)
  const b = await login(h, 'bob')

  const res = await post(h, '/revoke', { token: a.tokens.refresh_token, token_type_hint: 'refresh_token' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.body, '')
  t.equal((await h.deps.families.get(a.familyId))?.revoked, true)
  t.ok(h.published().some((p) => p.sid === a.familyId), 'announced')
  t.match(h.logs.events('family.revoked')[0], { family_id: a.familyId, reason: 'revocation' })

  const viaAccess = await post(h, '/revoke', { token: b.tokens.access_token, token_type_hint: 'whatever' })
  t.equal(viaAccess.statusCode, 200, 'an unknown hint is ignored (RFC 7009 §2.1)')
  t.equal((await h.deps.families.get(b.familyId))?.revoked, true, 'an access token revokes the family it descends from')

  const c = await login(h, 'bob')
  const foreign = await post(h, '/revoke', { token: c.tokens.refresh_token }, basic('cli', 'cli-secret'))
  t.equal(foreign.statusCode, 200, "another client's token: 200 ...")
  t.equal((await h.deps.families.get(c.familyId))?.revoked, false, '... and nothing happens')
  t.equal((await post(h, '/revoke', { token: c.tokens.access_token }, basic('cli', 'cli-secret'))).statusCode, 200)
  t.equal((await h.deps.families.get(c.familyId))?.revoked, false)

  for (const token of ['unknown', 'a.b.c', 'x'.repeat(10_000), a.tokens.refresh_token]) t.equal((await post(h, '/revoke', { token })).statusCode, 200)
  t.same((await post(h, '/revoke', {})).json(), { error: 'invalid_request', error_description: 'missing parameter token' })
  t.equal((await post(h, '/revoke', { token: 'x' }, null)).statusCode, 401, 'client authentication required')
  t.equal((await post(h, '/revoke', { token: 'x' }, basic('web', 'nope'))).statusCode, 401)
  const dup = await h.app.inject({ method: 'POST', url: '/revoke', headers: { ...FORM, authorization: WEB }, payload: 'token=a&token=b' })
  t.equal(dup.json().error, 'invalid_request')
  const json = await h.app.inject({ method: 'POST', url: '/revoke', headers: { 'content-type': 'application/json', authorization: WEB }, payload: '{"token":"x"}' })
  t.equal(json.statusCode, 400)
})

t.test('introspect: authenticated confidential clients; inactive for anything not live', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const a = await login(h)
  const active = await post(h, '/introspect', { token: a.tokens.access_token })
  t.equal(active.headers['cache-control'], 'no-store')
  const at = claimsOf(a.tokens.access_token)
  t.same(active.json(), {
    active: true, token_type: 'access_token', scope: a.tokens.scope, client_id: 'web', sub: at.sub, exp: at.exp, iat: at.iat, iss: h.issuer, aud: 'api://resource', jti: at.jti, sid: a.familyId, auth_time: at.auth_time,
  })
  const resource = await post(h, '/introspect', { token: a.tokens.access_token }, basic('reporting-service', 'reporting-secret'))
  t.equal(resource.json().active, true, 'a resource server with introspection metadata, allowed the audience, may introspect access tokens')
  const rt = await post(h, '/introspect', { token: a.tokens.refresh_token, token_type_hint: 'refresh_token' })
  t.match(rt.json(), { active: true, token_type: 'refresh_token', client_id: 'web', sub: at.sub, sid: a.familyId, scope: a.tokens.scope })
  t.same((await post(h, '/introspect', { token: a.tokens.refresh_token }, basic('reporting-service', 'reporting-secret'))).json(), { active: false }, "another client's refresh token")

  for (const token of ['', 'garbage', a.tokens.id_token, 'x'.repeat(9000)]) {
    if (token === '') continue
    t.same((await post(h, '/introspect', { token })).json(), { active: false })
  }
  t.equal((await post(h, '/introspect', { token: a.tokens.access_token }, null)).statusCode, 401)
  const pub = await post(h, '/introspect', { token: a.tokens.access_token, client_id: 'spa' }, null)
  t.equal(pub.statusCode, 401, 'a public client may not introspect')
  t.equal(pub.json().error, 'invalid_client')
  t.same((await post(h, '/introspect', {})).json(), { error: 'invalid_request', error_description: 'missing parameter token' })

  await post(h, '/revoke', { token: a.tokens.refresh_token })
  t.same((await post(h, '/introspect', { token: a.tokens.access_token })).json(), { active: false }, 'revoked family')
  t.same((await post(h, '/introspect', { token: a.tokens.refresh_token })).json(), { active: false })
  const b = await login(h, 'bob')
  h.clock.advanceSeconds(901)
  t.same((await post(h, '/introspect', { token: b.tokens.access_token })).json(), { active: false }, 'expired')
})

/** The confirmation page's form, posted back with the browser's cookies (the pending-logout cookie included). */
async function confirmLogout(h: OidcApp, page: { body: string; cookies: { name: string; value: string }[] }, cookies: Record<string, string>, action = 'logout') {
  const fields = parseLogoutForm(page.body)
  const all = { ...cookies, ...Object.fromEntries(page.cookies.filter((c) => c.value !== '').map((c) => [c.name, c.value])) }
  return await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ ...fields, action }), cookies: all })
}

t.test('introspect: only clients with introspection metadata, and only tokens of an audience they are allowed (RFC 7662 §4)', async (t) => {
  const h = await startOidcApp({
    clients: [
      { client_id: 'other-api', client_secret: 'other-secret', grant_types: ['client_credentials'], scope: '', audience: 'api://other', introspection: true },
      { client_id: 'nosy', client_secret: 'nosy-secret', grant_types: ['client_credentials'], scope: '', audience: 'api://resource' },
    ],
  })
  t.teardown(h.close)
  const a = await login(h)
  const admin = await post(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' }, basic('cli', 'cli-secret'))
  const cliToken = admin.json().access_token as string

  for (const [who, auth] of [['cli (first-party, no metadata)', basic('cli', 'cli-secret')], ['a confidential client without the metadata', basic('nosy', 'nosy-secret')]] as const) {
    const refused = await post(h, '/introspect', { token: a.tokens.access_token }, auth)
    t.equal(refused.statusCode, 403, `${who}: 403`)
    t.equal(refused.json().error, 'access_denied', who)
    t.notMatch(refused.body, /"sub"|"active"/, `${who}: learns nothing about the token`)
    t.equal((await post(h, '/introspect', { token: cliToken }, auth)).statusCode, 403, `${who}: not even about its own tokens`)
  }
  t.equal((await post(h, '/introspect', { token: a.tokens.access_token }, basic('nosy', 'wrong'))).statusCode, 401, 'unauthenticated: 401')

  const other = basic('other-api', 'other-secret')
  t.same((await post(h, '/introspect', { token: a.tokens.access_token }, other)).json(), { active: false }, 'a token for api://resource is not active to the api://other service')
  t.same((await post(h, '/introspect', { token: cliToken }, other)).json(), { active: false }, "nor an admin's token")
  t.same((await post(h, '/introspect', { token: a.tokens.refresh_token }, other)).json(), { active: false }, "nor another client's refresh token")
  const own = (await post(h, '/token', { grant_type: 'client_credentials' }, other)).json().access_token as string
  t.match((await post(h, '/introspect', { token: own }, other)).json(), { active: true, client_id: 'other-api', aud: 'api://other' }, 'a token issued to the caller')
  t.match((await post(h, '/introspect', { token: cliToken })).json(), { active: true, client_id: 'cli' }, 'web is allowed api://resource, so it sees tokens of that audience')
  t.ok(h.logs.events('introspection.refused').length >= 2, 'refusals are logged')
})

t.test('logout: a hint of this browser session ends it at once; revokes its families, redirects only where registered', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const logout = async (query: Record<string, string>, cookies: Record<string, string> = {}) =>
    await h.app.inject({ method: 'GET', url: `/logout?${new URLSearchParams(query)}`, cookies })

  const a = await login(h)
  const out = await logout({ id_token_hint: a.tokens.id_token, post_logout_redirect_uri: 'http://127.0.0.1:3000/', state: 's1' }, a.cookies)
  t.equal(out.statusCode, 303)
  t.equal(out.headers.location, 'http://127.0.0.1:3000/?state=s1')
  const cleared = out.cookies.find((c) => c.name === 'gh_session')!
  t.equal(cleared.value, '')
  t.equal(cleared.path, '/')
  t.equal(await h.deps.sessions.get(a.sessionId), null)
  t.equal((await h.deps.families.get(a.familyId))?.revoked, true)
  t.ok(h.published().some((p) => p.sid === a.familyId))
  t.match(h.logs.events('session.ended')[0], { session_id: a.sessionId, reason: 'logout', families: 1, clients: ['web'] })

  const refused: [string, Record<string, string>][] = [
    ['unregistered URI', { client_id: 'web', post_logout_redirect_uri: 'https://evil.example/' }],
    ["another client's URI", { client_id: 'web', post_logout_redirect_uri: 'http://127.0.0.1:3000/spa/' }],
    ['no client named', { post_logout_redirect_uri: 'http://127.0.0.1:3000/' }],
    ['prefix trick', { client_id: 'web', post_logout_redirect_uri: 'http://127.0.0.1:3000/@evil.example' }],
  ]
  for (const [name, q] of refused) {
    const b = await login(h, 'bob')
    const page = await logout(q, b.cookies)
    t.equal(page.statusCode, 200, `${name}: no hint, so the user is asked`)
    t.ok(await h.deps.sessions.get(b.sessionId), `${name}: nothing ended before the answer`)
    const res = await confirmLogout(h, page, b.cookies)
    t.equal(res.statusCode, 200, name)
    t.notOk(res.headers.location, `${name}: no redirect`)
    t.match(res.body, /You have been signed out\./)
    t.equal(await h.deps.sessions.get(b.sessionId), null, `${name}: logged out once confirmed`)
  }

  const c = await login(h)
  for (const [name, q] of Object.entries<Record<string, string>>({
    'a forged hint': { id_token_hint: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' },
    'an access token as hint': { id_token_hint: c.tokens.access_token },
    'client_id not the hint audience': { id_token_hint: c.tokens.id_token, client_id: 'spa' },
    'unknown client': { client_id: 'ghost' },
  })) {
    const res = await logout(q, c.cookies)
    t.equal(res.statusCode, 400, name)
    t.notOk(res.headers.location)
    t.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/)
  }
  t.ok(await h.deps.sessions.get(c.sessionId), 'a rejected request logs nobody out')

  h.clock.advanceSeconds(3600)
  const noCookie = await logout({ id_token_hint: c.tokens.id_token, post_logout_redirect_uri: 'http://127.0.0.1:3000/' })
  t.equal(noCookie.statusCode, 303, 'no session in this browser: nothing to ask, straight back')
  t.ok(await h.deps.sessions.get(c.sessionId), 'an ID token alone ends nothing')
  t.equal((await h.deps.families.get(c.familyId))?.revoked, false)
  const expiredHint = await logout({ id_token_hint: c.tokens.id_token, post_logout_redirect_uri: 'http://127.0.0.1:3000/' }, c.cookies)
  t.equal(expiredHint.statusCode, 303, 'an expired hint of this session is still a hint')
  t.equal(await h.deps.sessions.get(c.sessionId), null)

  const d = await login(h)
  const viaPost = await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ client_id: 'web', post_logout_redirect_uri: 'http://localhost:3000/', state: 'kept' }), cookies: d.cookies })
  t.equal(viaPost.statusCode, 200, 'asked')
  t.match(String(viaPost.headers['content-security-policy']), /form-action 'self' http:\/\/localhost:3000/, 'the form may follow the redirect')
  const done = await confirmLogout(h, viaPost, d.cookies)
  t.equal(done.statusCode, 303)
  t.equal(done.headers.location, 'http://localhost:3000/?state=kept', 'redirect and state kept through the confirmation')
  t.equal(await h.deps.sessions.get(d.sessionId), null)

  const bare = await logout({})
  t.equal(bare.statusCode, 200, 'nothing to end: still a page')
  const dup = await h.app.inject({ method: 'GET', url: '/logout?state=a&state=b' })
  t.equal(dup.statusCode, 400)
})

t.test('logout confirmation: CSRF token and cookie required, bound to the session asked about; "stay signed in" ends nothing', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const a = await login(h)
  const page = await h.app.inject({ method: 'GET', url: '/logout', cookies: a.cookies })
  const fields = parseLogoutForm(page.body)
  const pendingCookie = page.cookies.find((c) => c.name.startsWith('gh_logout_'))!
  t.equal(pendingCookie.path, '/logout')
  t.equal(pendingCookie.httpOnly, true)
  t.equal(pendingCookie.sameSite, 'Lax')
  const post = async (payload: Record<string, string>, cookies: Record<string, string>) => await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form(payload), cookies })
  const withPending = { ...a.cookies, [pendingCookie.name]: pendingCookie.value }

  t.equal((await post({ ...fields, csrf: 'x'.repeat(43) }, withPending)).statusCode, 403, 'wrong CSRF token')
  t.equal((await post({ ...fields }, a.cookies)).statusCode, 400, 'no pending-logout cookie (a cross-site form)')
  t.equal((await post({ confirm: fields.confirm }, withPending)).statusCode, 403, 'no CSRF token')
  t.ok(await h.deps.sessions.get(a.sessionId), 'none of them ended the session')

  const stay = await post({ ...fields, action: 'cancel' }, withPending)
  t.equal(stay.statusCode, 200)
  t.match(stay.body, /still signed in/)
  t.ok(await h.deps.sessions.get(a.sessionId), 'stay signed in')

  // The user signs in as someone else meanwhile: the old confirmation does not end the new session.
  const page2 = await h.app.inject({ method: 'GET', url: '/logout', cookies: a.cookies })
  const b = await login(h, 'bob')
  const pending2 = page2.cookies.find((c) => c.name.startsWith('gh_logout_'))!
  const again = await post({ ...parseLogoutForm(page2.body), action: 'logout' }, { ...b.cookies, [pending2.name]: pending2.value })
  t.equal(again.statusCode, 200)
  t.ok(parseLogoutForm(again.body), 'asked again, about the current session')
  t.ok(await h.deps.sessions.get(b.sessionId))

  h.clock.advanceSeconds(601)
  const page3 = await h.app.inject({ method: 'GET', url: '/logout', cookies: b.cookies })
  h.clock.advanceSeconds(601)
  const late = await confirmLogout(h, page3, b.cookies)
  t.equal(late.statusCode, 400, 'a confirmation expires after 10 minutes')
  t.ok(await h.deps.sessions.get(b.sessionId))
})

t.test('discovery lists every supported value', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.same([...doc.grant_types_supported].sort(), ['authorization_code', 'client_credentials', 'password', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange'])
  t.same(doc.response_types_supported, ['code'])
  t.same(doc.code_challenge_methods_supported, ['S256'])
  t.equal(doc.authorization_response_iss_parameter_supported, true)
  t.equal(doc.end_session_endpoint, `${h.issuer}/logout`)
  t.same(doc.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'])
  t.same(doc.revocation_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'])
  t.same(doc.introspection_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post', 'private_key_jwt'])
  t.same(doc.prompt_values_supported, ['none', 'login'])
  for (const s of ['openid', 'profile', 'email', 'documents:read', 'internal:read']) t.ok(doc.scopes_supported.includes(s), s)
  for (const c of ['sub', 'auth_time', 'nonce', 'at_hash', 'sid', 'name', 'preferred_username', 'email', 'email_verified']) t.ok(doc.claims_supported.includes(c), c)
  t.same(doc.id_token_signing_alg_values_supported, ['RS256'])
})

t.test('junk never gets a 5xx or a stack trace', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requests: { method: 'GET' | 'POST'; url: string; payload?: string; headers?: Record<string, string>; cookies?: Record<string, string> }[] = [
    { method: 'GET', url: '/authorize?%' },
    { method: 'GET', url: '/authorize?client_id=%E0%A4%A' },
    { method: 'GET', url: '/authorize?client_id[]=web' },
    { method: 'GET', url: `/authorize?client_id=${'x'.repeat(5000)}` },
    { method: 'GET', url: '/authorize', cookies: { gh_session: 'garbage' } },
    { method: 'GET', url: `/authorize?${new URLSearchParams({ client_id: 'web', redirect_uri: REDIRECT_URI, response_type: 'code', code_challenge: s256(VERIFIER), code_challenge_method: 'S256', state: 's'.repeat(3000) })}` },
    { method: 'POST', url: '/authorize', headers: { 'content-type': 'application/json' }, payload: '{"client_id":"web"' },
    { method: 'POST', url: '/authorize', headers: { 'content-type': 'text/plain' }, payload: 'x' },
    { method: 'POST', url: '/login', headers: FORM, payload: 'interaction=%zz' },
    { method: 'POST', url: '/login', headers: FORM, payload: 'interaction=AAAAAAAAAAAAAAAA&csrf=x', cookies: { gh_login_AAAAAAAAAAAAAAAA: 'bm90IGpzb24.sig' } },
    { method: 'POST', url: '/login', headers: FORM, payload: 'x'.repeat(70_000) },
    { method: 'GET', url: '/login' },
    { method: 'GET', url: '/userinfo', headers: { authorization: 'Bearer ' + 'a'.repeat(20_000) } },
    { method: 'POST', url: '/userinfo', headers: { 'content-type': 'application/json' }, payload: '{"access_token":1}' },
    { method: 'POST', url: '/revoke', headers: FORM, payload: 'token=x&client_id=web&client_secret=web-secret&client_secret=x' },
    { method: 'POST', url: '/introspect', headers: { 'content-type': 'application/json', authorization: WEB }, payload: '{' },
    { method: 'POST', url: '/token', headers: FORM, payload: 'grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c' },
    { method: 'GET', url: '/logout?id_token_hint=' + 'e'.repeat(10_000) },
    { method: 'GET', url: '/logout?id_token_hint=a.b.c&post_logout_redirect_uri=javascript:alert(1)' },
    { method: 'POST', url: '/logout', headers: { 'content-type': 'application/json' }, payload: '{"state":[1]}' },
  ]
  for (const r of requests) {
    const res = await h.app.inject(r)
    t.ok(res.statusCode < 500, `${r.method} ${r.url.slice(0, 60)} → ${res.statusCode}`)
    t.notMatch(res.body, /at .+\.(ts|js):\d+/, 'no stack trace')
  }
})
