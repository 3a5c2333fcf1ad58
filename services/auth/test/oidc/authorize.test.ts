/**
 * /authorize and the login form through app.inject: which errors are shown and which are
 * redirected (RFC 6749 §4.1.2.1), PKCE required, open-redirect attempts refused, CSRF on /login,
 * no user enumeration, cookie attributes, security headers, escaping.
 */
import t, { type Test } from 'tap'
import { unsign } from '@fastify/cookie'
import type { LightMyRequestResponse } from 'fastify'
import { s256 } from '../../src/authorize/pkce.js'
import { startOidcApp, parseLoginForm, type OidcApp } from './harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'

function authorizeParams(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const p: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: 'web',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile',
    state: 'st-123',
    nonce: 'n-456',
    code_challenge: s256(VERIFIER),
    code_challenge_method: 'S256',
    ...extra,
  }
  return Object.fromEntries(Object.entries(p).filter((e): e is [string, string] => e[1] !== undefined))
}

async function authorize(h: OidcApp, extra: Record<string, string | undefined> = {}, cookies?: Record<string, string>) {
  return await h.app.inject({ method: 'GET', url: '/authorize?' + new URLSearchParams(authorizeParams(extra)).toString(), ...(cookies ? { cookies } : {}) })
}

function cookiesOf(res: LightMyRequestResponse): Record<string, string> {
  return Object.fromEntries(res.cookies.map((c) => [c.name, c.value]))
}

async function postLogin(h: OidcApp, fields: Record<string, string>, cookies: Record<string, string>) {
  return await h.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(fields).toString(), cookies })
}

function assertPageHeaders(t: Test, res: LightMyRequestResponse) {
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/)
  const csp = String(res.headers['content-security-policy'])
  t.match(csp, /default-src 'none'/)
  t.match(csp, /frame-ancestors 'none'/)
  t.match(csp, /form-action 'self'/)
  t.match(csp, /style-src 'nonce-[A-Za-z0-9+/=]+'/)
  t.equal(res.headers['x-frame-options'], 'DENY')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('errors about the client or its redirect URI are shown, never redirected', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const cases: Record<string, Record<string, string | undefined>> = {
    'missing client_id': { client_id: undefined },
    'unknown client': { client_id: 'ghost' },
    'missing redirect_uri': { redirect_uri: undefined },
    'unregistered redirect_uri': { redirect_uri: 'https://evil.example/callback' },
    'path appended': { redirect_uri: `${REDIRECT_URI}/../evil` },
    'query appended': { redirect_uri: `${REDIRECT_URI}?next=https://evil.example` },
    'prefix only': { redirect_uri: `${REDIRECT_URI}x` },
    'other host': { redirect_uri: 'http://127.0.0.1.evil.example:3000/callback' },
    'userinfo trick': { redirect_uri: 'http://127.0.0.1:3000@evil.example/callback' },
    'client without redirect URIs': { client_id: 'cli' },
  }
  for (const [name, extra] of Object.entries(cases)) {
    const res = await authorize(h, extra)
    t.equal(res.statusCode, 400, name)
    t.notOk(res.headers.location, `${name}: no redirect`)
    assertPageHeaders(t, res)
    t.match(res.body, /<html lang="en">/)
  }
  const repeated = await h.app.inject({ method: 'GET', url: `/authorize?client_id=web&client_id=spa&redirect_uri=${encodeURIComponent(REDIRECT_URI)}` })
  t.equal(repeated.statusCode, 400, 'repeated client_id')
  t.notOk(repeated.headers.location)
  const evilTwice = await h.app.inject({ method: 'GET', url: `/authorize?client_id=web&redirect_uri=${encodeURIComponent(REDIRECT_URI)}&redirect_uri=https://evil.example/` })
  t.equal(evilTwice.statusCode, 400, 'repeated redirect_uri')
  t.notOk(evilTwice.headers.location)
  t.equal(h.logs.events('authorize.rejected').length, Object.keys(cases).length + 2)
})

t.test('other errors go back to the registered redirect URI with state and iss', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const cases: [string, Record<string, string | undefined>, string][] = [
    ['missing response_type', { response_type: undefined }, 'invalid_request'],
    ['implicit flow', { response_type: 'token' }, 'unsupported_response_type'],
    ['hybrid flow', { response_type: 'code id_token' }, 'unsupported_response_type'],
    ['no PKCE', { code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request'],
    ['PKCE plain', { code_challenge_method: 'plain' }, 'invalid_request'],
    ['PKCE method missing', { code_challenge_method: undefined }, 'invalid_request'],
    ['malformed challenge', { code_challenge: 'short' }, 'invalid_request'],
    ['scope not allowed', { scope: 'openid internal:read' }, 'invalid_scope'],
    ['malformed scope', { scope: 'openid "x"' }, 'invalid_scope'],
    ['prompt none with login', { prompt: 'none login' }, 'invalid_request'],
    ['bad max_age', { max_age: '-1' }, 'invalid_request'],
    ['request object', { request: 'eyJhbGciOiJub25lIn0.e30.' }, 'invalid_request'],
    ['response_mode fragment', { response_mode: 'fragment' }, 'invalid_request'],
    ['nonce too long', { nonce: 'n'.repeat(600) }, 'invalid_request'],
  ]
  for (const [name, extra, error] of cases) {
    const res = await authorize(h, extra)
    t.equal(res.statusCode, 302, name)
    const back = new URL(res.headers.location as string)
    t.equal(back.origin + back.pathname, REDIRECT_URI, `${name}: to the registered URI`)
    t.equal(back.searchParams.get('error'), error, name)
    t.type(back.searchParams.get('error_description'), 'string')
    t.equal(back.searchParams.get('state'), 'st-123', `${name}: state passed through`)
    t.equal(back.searchParams.get('iss'), h.issuer, `${name}: iss (RFC 9207)`)
    t.notOk(back.searchParams.get('code'))
  }
  const dup = await h.app.inject({ method: 'GET', url: '/authorize?' + new URLSearchParams(authorizeParams()).toString() + '&scope=openid' })
  t.equal(new URL(dup.headers.location as string).searchParams.get('error'), 'invalid_request', 'a repeated parameter')
  const dupState = await h.app.inject({ method: 'GET', url: '/authorize?' + new URLSearchParams(authorizeParams()).toString() + '&state=other' })
  const dupBack = new URL(dupState.headers.location as string)
  t.equal(dupBack.searchParams.get('error'), 'invalid_request')
  t.equal(dupBack.searchParams.get('state'), null, 'an ambiguous state is not echoed')

  const noGrant = await startOidcApp({ clients: [{ client_id: 'svc-cc', client_secret: 's3cret-s3cret', grant_types: ['client_credentials'], scope: 'documents:read', redirect_uris: ['https://svc.example/cb'] }] })
  t.teardown(noGrant.close)
  const unauthorized = await authorize(noGrant, { client_id: 'svc-cc', redirect_uri: 'https://svc.example/cb', scope: 'documents:read' })
  t.equal(new URL(unauthorized.headers.location as string).searchParams.get('error'), 'unauthorized_client')
})

t.test('the login page: accessible form, security headers, escaped values, signed pending-login cookie', async (t) => {
  const h = await startOidcApp({ clients: [{ client_id: 'xss', client_name: '<img src=x onerror=alert(1)>', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], scope: 'openid', redirect_uris: ['https://xss.example/cb'] }] })
  t.teardown(h.close)
  const res = await authorize(h, { login_hint: '"><script>alert(1)</script>' })
  t.equal(res.statusCode, 200)
  assertPageHeaders(t, res)
  t.match(String(res.headers['content-security-policy']), /form-action 'self' http:\/\/127\.0\.0\.1:3000;/, 'the form may redirect to the client origin only')
  t.match(res.body, /<label for="username">/)
  t.match(res.body, /<label for="password">/)
  t.match(res.body, /autocomplete="current-password"/)
  t.match(res.body, /<form method="post" action="login">/)
  t.notMatch(res.body, /<script/i, 'no script at all, the page works without JavaScript')
  t.match(res.body, /value="&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;"/, 'login_hint escaped')
  const nonce = /style-src 'nonce-([^']+)'/.exec(String(res.headers['content-security-policy']))![1]
  t.match(res.body, `<style nonce="${nonce}">`, 'the inline style carries the CSP nonce')

  const form = parseLoginForm(res.body)
  const cookie = res.cookies.find((c) => c.name === `gh_login_${form.interaction}`)!
  t.ok(cookie, 'one pending-login cookie per form')
  t.equal(cookie.httpOnly, true)
  t.equal(cookie.sameSite, 'Lax')
  t.equal(cookie.path, '/login')
  t.equal(cookie.maxAge, 600)
  t.notOk(cookie.secure, 'no Secure flag on http://127.0.0.1 (local development)')
  t.match(cookie.value, /\.[A-Za-z0-9+/_-]+$/, 'signed')

  const xss = await authorize(h, { client_id: 'xss', redirect_uri: 'https://xss.example/cb', scope: 'openid' })
  t.equal(xss.statusCode, 200)
  t.match(xss.body, /&lt;img src=x onerror=alert\(1\)&gt;/, 'client name escaped')
  t.notMatch(xss.body, /<img/)
})

t.test('cookies are Secure outside local development', async (t) => {
  const h = await startOidcApp({ env: { ISSUER: 'https://id.example.com' } })
  t.teardown(h.close)
  const page = await authorize(h)
  const form = parseLoginForm(page.body)
  t.equal(page.cookies[0]?.secure, true)
  const res = await postLogin(h, { ...form, username: 'alice', password: 'alice-password' }, cookiesOf(page))
  t.equal(res.statusCode, 303)
  t.notOk(res.cookies.some((c) => c.name === 'gh_session'), 'under https the session cookie has the __Host- prefix')
  const session = res.cookies.find((c) => c.name === '__Host-gh_session')!
  t.ok(session, '__Host-gh_session')
  t.equal(session.secure, true)
  t.equal(session.httpOnly, true)
  t.equal(session.sameSite, 'Lax')
  t.equal(session.path, '/', '__Host- requires Path=/')
  t.equal(session.domain, undefined, '__Host- forbids Domain')
  t.match(String(res.headers['set-cookie']), /__Host-gh_session=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax/)
  // The session is read back under that name only: a gh_session cookie (which a sibling domain or
  // a plain-http response could plant) is not a session there.
  const again = await authorize(h, {}, { '__Host-gh_session': session.value })
  t.equal(again.statusCode, 302, 'a live session skips the form')
  const planted = await authorize(h, {}, { gh_session: session.value })
  t.equal(planted.statusCode, 200, 'the unprefixed name is not read under https')
})

t.test('an https issuer with a path still gets a __Host- session cookie at Path=/', async (t) => {
  const h = await startOidcApp({ env: { ISSUER: 'https://example.com/id' } })
  t.teardown(h.close)
  const page = await authorize(h)
  const res = await postLogin(h, { ...parseLoginForm(page.body), username: 'alice', password: 'alice-password' }, cookiesOf(page))
  t.equal(res.statusCode, 303)
  t.match(res.cookies.find((c) => c.name === '__Host-gh_session'), { path: '/', secure: true })
})

t.test('POST /login: success sets the session and redirects with a code', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const page = await authorize(h)
  const form = parseLoginForm(page.body)
  const res = await postLogin(h, { ...form, username: 'alice', password: 'alice-password' }, cookiesOf(page))
  t.equal(res.statusCode, 303, 'See Other: the browser follows with GET')
  const back = new URL(res.headers.location as string)
  t.equal(back.origin + back.pathname, REDIRECT_URI)
  t.match(back.searchParams.get('code'), /^[A-Za-z0-9_-]{43}$/)
  t.equal(back.searchParams.get('state'), 'st-123')
  t.equal(back.searchParams.get('iss'), h.issuer)
  const session = res.cookies.find((c) => c.name === 'gh_session')!
  t.equal(session.httpOnly, true)
  t.equal(session.sameSite, 'Lax')
  t.equal(session.path, '/')
  t.notOk(session.secure)
  const cleared = res.cookies.find((c) => c.name === `gh_login_${form.interaction}`)!
  t.equal(cleared.value, '', 'the pending-login cookie is cleared')
  const [event] = h.logs.events('login.succeeded')
  t.match(event, { client_id: 'web', ip: '127.0.0.1' })
  t.notOk(h.logs.text.includes('alice-password'), 'the password is never logged')
  t.notOk(h.logs.text.includes(back.searchParams.get('code')!), 'the code is never logged')
  t.notOk(h.logs.text.includes(session.value), 'the session cookie is never logged')

})

t.test('POST /login: CSRF and tampering are refused', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const page = await authorize(h)
  const form = parseLoginForm(page.body)
  const cookies = cookiesOf(page)
  const creds = { username: 'alice', password: 'alice-password' }

  const noCookie = await postLogin(h, { ...form, ...creds }, {})
  t.equal(noCookie.statusCode, 400, 'a cross-site post carries no cookie (SameSite=Lax): refused')
  t.notOk(noCookie.headers.location)
  assertPageHeaders(t, noCookie)

  const wrongCsrf = await postLogin(h, { ...form, csrf: 'A'.repeat(43), ...creds }, cookies)
  t.equal(wrongCsrf.statusCode, 403, 'wrong CSRF token')
  t.notOk(wrongCsrf.cookies.some((c) => c.name === 'gh_session'), 'no session')
  const noCsrf = await postLogin(h, { interaction: form.interaction, ...creds }, cookies)
  t.equal(noCsrf.statusCode, 403, 'missing CSRF token')

  const name = `gh_login_${form.interaction}`
  const raw = cookies[name]!
  const dot = raw.lastIndexOf('.')
  const payload = JSON.parse(Buffer.from(raw.slice(0, dot), 'base64url').toString()) as { request: { redirectUri: string } }
  payload.request.redirectUri = 'https://evil.example/callback'
  const forged = `${Buffer.from(JSON.stringify(payload)).toString('base64url')}${raw.slice(dot)}`
  const tampered = await postLogin(h, { ...form, ...creds }, { [name]: forged })
  t.equal(tampered.statusCode, 400, 'a tampered pending request fails the signature')
  t.notOk(tampered.headers.location)

  const otherForm = await postLogin(h, { ...form, interaction: 'AAAAAAAAAAAAAAAA', ...creds }, cookies)
  t.equal(otherForm.statusCode, 400, 'an interaction without its cookie')

  h.clock.advanceSeconds(601)
  const expired = await postLogin(h, { ...form, ...creds }, cookies)
  t.equal(expired.statusCode, 400, 'the form expires after 10 minutes')
  t.same(h.logs.events('login.rejected').map((e) => e.reason), ['missing', 'csrf', 'csrf', 'missing', 'missing', 'expired'])

  const json = await h.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ ...form, ...creds }), cookies })
  t.equal(json.statusCode, 400, 'only the form encoding')
  const dup = await h.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `${new URLSearchParams({ ...form, ...creds })}&username=bob`, cookies })
  t.equal(dup.statusCode, 400, 'a repeated field')
})

t.test('POST /login: wrong password and unknown user look the same', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const page = await authorize(h)
  const form = parseLoginForm(page.body)
  const cookies = cookiesOf(page)
  const strip = (body: string) => body.replace(/nonce="[^"]+"/, '').replace(/value="(alice|mallory)"/, '')
  const wrong = await postLogin(h, { ...form, username: 'alice', password: 'nope' }, cookies)
  const unknown = await postLogin(h, { ...form, username: 'mallory', password: 'nope' }, cookies)
  t.equal(wrong.statusCode, 400)
  t.equal(unknown.statusCode, 400)
  t.equal(strip(wrong.body), strip(unknown.body), 'same page')
  t.match(wrong.body, /role="alert"/)
  t.match(wrong.body, /The username or password is not correct\./)
  t.match(wrong.body, /value="alice"/, 'the username is kept in the form')
  t.notOk(wrong.cookies.some((c) => c.name === 'gh_session'))
  const missing = await postLogin(h, { ...form, username: 'alice' }, cookies)
  t.equal(missing.statusCode, 400)
  const failures = h.logs.events('login.failed')
  t.equal(failures.length, 2)
  for (const f of failures) t.match(f, { client_id: 'web', ip: '127.0.0.1' })
  t.notOk(h.logs.text.includes('nope'), 'no password in the log')

  const ok = await postLogin(h, { ...form, username: 'alice', password: 'alice-password' }, cookies)
  t.equal(ok.statusCode, 303, 'the same form still works after failures')
})

t.test('a live session skips the form; a different user signing in ends the previous session', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const page = await authorize(h)
  const login = await postLogin(h, { ...parseLoginForm(page.body), username: 'alice', password: 'alice-password' }, cookiesOf(page))
  const session = cookiesOf(login)
  const sso = await authorize(h, {}, session)
  t.equal(sso.statusCode, 302)
  t.ok(new URL(sso.headers.location as string).searchParams.get('code'))
  t.equal(h.logs.events('authorize.sso').length, 1)

  const forged = await authorize(h, {}, { gh_session: session.gh_session!.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) })
  t.equal(forged.statusCode, 200, 'a cookie with a bad signature is no session')

  const aliceSid = (await h.deps.sessions.resolve(unsign(session.gh_session!, h.config.cookieSecret).value!))!.id
  const bobPage = await authorize(h, { prompt: 'login' }, session)
  const bob = await postLogin(h, { ...parseLoginForm(bobPage.body), username: 'bob', password: 'bob-password' }, { ...cookiesOf(bobPage), ...session })
  t.equal(bob.statusCode, 303)
  t.equal(await h.deps.sessions.get(aliceSid), null, "alice's session ended")
  t.not(cookiesOf(bob).gh_session, session.gh_session)
})

t.test('POST /authorize works like GET (OIDC Core §3.1.2.1)', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const res = await h.app.inject({ method: 'POST', url: '/authorize', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(authorizeParams()).toString() })
  t.equal(res.statusCode, 200)
  t.ok(parseLoginForm(res.body))
})

t.test('when Redis goes down the browser flow answers 503 pages, never 500', async (t) => {
  const { startRedis } = await import('@gatehouse/test-harness')
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const h = await startOidcApp({ env: { REDIS_URL: redis.url } })
  t.teardown(h.close)
  const page = await authorize(h)
  t.equal(page.statusCode, 200)
  const first = await postLogin(h, { ...parseLoginForm(page.body), username: 'alice', password: 'alice-password' }, cookiesOf(page))
  t.equal(first.statusCode, 303, 'works while Redis is up')
  const session = { gh_session: cookiesOf(first).gh_session! }
  const second = await authorize(h, { prompt: 'login' }, session)
  await redis.stop()

  const login = await postLogin(h, { ...parseLoginForm(second.body), username: 'alice', password: 'alice-password' }, { ...cookiesOf(second), ...session })
  t.equal(login.statusCode, 503)
  assertPageHeaders(t, login)
  t.notOk(login.cookies.some((c) => c.name === 'gh_session'), 'no session cookie when no session was stored')
  const again = await authorize(h, {}, session)
  t.equal(again.statusCode, 503, 'the client cannot be looked up: a page, no redirect')
  t.notOk(again.headers.location)
  assertPageHeaders(t, again)
  const logout = await h.app.inject({ method: 'GET', url: '/logout', cookies: session })
  t.equal(logout.statusCode, 503)
  t.notOk(logout.cookies.some((c) => c.name === 'gh_session'), 'the cookie is kept: the session could not be ended')
  assertPageHeaders(t, logout)
})
