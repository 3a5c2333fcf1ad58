/**
 * The account page (DESIGN §10.5) in process over HTTP (app.inject through injectFetch): it needs
 * a session; every form is CSRF-protected and bound to the session it was shown to; signing a
 * session out ends it and its families only; another user's session is refused; sign out
 * everywhere; the password change (the login gate's limits, the policy, the other sessions ended,
 * the new password at /token, the audit event).
 */
import t, { type Test } from 'tap'
import { CookieJar, browserLogin, injectFetch } from '@gatehouse/test-harness'
import type { OidcApp } from '../oidc/harness.js'
import { DeviceBrowser, field, type Page } from '../device/device-harness.js'
import { authorizeUrl, exchange, postToken, startResourceApp } from '../oidc/resource-fixture.js'

interface Signed {
  browser: DeviceBrowser
  refreshToken: string
}

/** A browser where `username` signed in through the code flow of `dash`, with the refresh token it got. */
async function signIn(h: OidcApp, username = 'alice', password = `${username}-password`, userAgent?: string): Promise<Signed> {
  const browser = new DeviceBrowser(h)
  const send = injectFetch(h.app)
  const fetch = userAgent === undefined ? send : (u: URL, init: RequestInit) => send(u, { ...init, headers: { ...(init.headers as Record<string, string>), 'user-agent': userAgent } })
  const back = await browserLogin(authorizeUrl(h), { jar: browser.jar as CookieJar, fetch, username, password })
  const code = back.code
  if (code === null) throw new Error(`no code: ${back.redirect.href}`)
  const tokens = (await exchange(h, code)).json<{ refresh_token: string }>()
  return { browser, refreshToken: tokens.refresh_token }
}

async function refreshes(h: OidcApp, refreshToken: string): Promise<boolean> {
  return (await postToken(h, { grant_type: 'refresh_token', refresh_token: refreshToken })).statusCode === 200
}

async function sessionIds(page: Page): Promise<string[]> {
  return [...page.html.matchAll(/name="session" value="([^"]*)"/g)].map((m) => m[1]!)
}

function formFields(page: Page): { form: string; csrf: string } {
  return { form: field(page.html, 'form'), csrf: field(page.html, 'csrf') }
}

async function app(t: Test, env: Record<string, string> = {}): Promise<OidcApp> {
  const h = await startResourceApp({ env: { LOGIN_DELAY_MS: '0', ...env } })
  t.teardown(h.close)
  return h
}

t.test('not signed in: the login form, then back to the account page', async (t) => {
  const h = await app(t)
  const browser = new DeviceBrowser(h)
  const login = await browser.get('/account')
  t.equal(login.status, 200)
  t.match(login.html, /<strong>Your account<\/strong>/)
  const back = await browser.post('/login', { interaction: field(login.html, 'interaction'), csrf: field(login.html, 'csrf'), username: 'alice', password: 'alice-password' })
  t.equal(back.status, 303)
  t.equal(back.location, `${h.issuer}/account`)
  const page = await browser.get('/account')
  t.equal(page.status, 200)
  t.match(page.html, /<title>Your account – Gatehouse<\/title>/)
  t.match(page.html, /<span id="account-username">alice<\/span>/)
  t.match(page.html, /\(this device\)/)
  t.match(page.html, /Second factors/)
  t.match(page.headers.get('content-security-policy'), /default-src 'none'/)
  t.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/)
  t.equal(page.headers.get('x-frame-options'), 'DENY')
  t.equal(page.headers.get('cache-control'), 'no-store')
  t.notMatch(page.html, /<script/i)
  t.match(page.html, /<label for="current_password">/, 'labelled fields')
})

t.test('CSRF: every form refuses a missing cookie, a wrong token and a form of another sign-in; nothing is done', async (t) => {
  const h = await app(t)
  const a = await signIn(h)
  const other = await signIn(h)
  const page = await a.browser.get('/account')
  const f = formFields(page)
  const [first, second] = await sessionIds(page)
  const otherPage = await other.browser.get('/account')
  const forms: Array<[string, Record<string, string>]> = [
    ['/account/sessions/end', { session: second! }],
    ['/account/sessions/end-all', {}],
    ['/account/password', { current_password: 'alice-password', new_password: 'a-new-password', new_password_again: 'a-new-password' }],
  ]
  for (const [path, fields] of forms) {
    t.equal((await a.browser.post(path, { ...f, ...fields }, false)).status, 400, `${path}: no cookies`)
    t.equal((await a.browser.post(path, { ...f, csrf: `${f.csrf.slice(0, -2)}AA`, ...fields })).status, 403, `${path}: wrong token`)
    t.equal((await a.browser.post(path, { ...f, csrf: '', ...fields })).status, 403, `${path}: no token`)
    // The other browser's genuine form (its cookie and token), posted with this browser's session: refused.
    const jar = new CookieJar()
    for (const [k, v] of other.browser.jar.cookies) if (k.startsWith('gh_account_')) jar.cookies.set(k, v)
    for (const [k, v] of a.browser.jar.cookies) if (!k.startsWith('gh_account_')) jar.cookies.set(k, v)
    const res = await h.app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() }, payload: new URLSearchParams({ ...formFields(otherPage), ...fields }).toString() })
    t.equal(res.statusCode, 403, `${path}: a form shown to another sign-in`)
  }
  t.same(h.logs.lines.map((l) => JSON.parse(l) as { level: number }).filter((l) => l.level >= 50), [], 'refusals are not server errors')
  t.ok(h.logs.events('account.form_rejected').length >= 12, 'each refusal logged')
  t.ok(await refreshes(h, a.refreshToken), 'nothing was ended')
  t.ok(await refreshes(h, other.refreshToken), 'nothing was ended')
  t.equal((await sessionIds(await a.browser.get('/account'))).length, 2)
  t.ok(first)
})

t.test('sign out one session: it and its families end, the others live; another user\'s session is refused', async (t) => {
  const h = await app(t)
  const a = await signIn(h)
  const b = await signIn(h, 'alice', undefined, 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1')
  const bob = await signIn(h, 'bob')
  const page = await a.browser.get('/account')
  t.match(page.html, /Safari on iOS/, 'the device from the User-Agent')
  const bobPage = await bob.browser.get('/account')
  const [bobSession] = await sessionIds(bobPage)
  const refused = await a.browser.post('/account/sessions/end', { ...formFields(page), session: bobSession! })
  t.equal(refused.status, 400, 'another user\'s session id is refused')
  t.ok(await refreshes(h, bob.refreshToken), 'bob is still signed in')

  const ids = await sessionIds(page)
  const mine = ids[0]!
  const theirs = ids.find((id) => id !== mine)!
  const ended = await a.browser.post('/account/sessions/end', { ...formFields(page), session: theirs })
  t.equal(ended.status, 303)
  t.equal(ended.location, `${h.issuer}/account?notice=signed-out`)
  t.notOk(await refreshes(h, b.refreshToken), 'the signed-out session\'s refresh token fails')
  t.ok(await refreshes(h, a.refreshToken), 'this session lives')
  t.ok(h.logs.events('session.ended').some((e) => e.session_id === theirs && e.reason === 'logout'))
  const after = await a.browser.get('/account?notice=signed-out')
  t.same(await sessionIds(after), [mine])
  t.match(after.html, /The session was signed out\./)

  const self = await a.browser.post('/account/sessions/end', { ...formFields(after), session: mine })
  t.equal(self.status, 200)
  t.match(self.headers.get('set-cookie'), /gh_session=;/, 'the cookie is cleared')
  t.notOk(await refreshes(h, a.refreshToken))
})

t.test('sign out everywhere: every session and family of the user', async (t) => {
  const h = await app(t)
  const a = await signIn(h)
  const b = await signIn(h)
  const bob = await signIn(h, 'bob')
  const page = await a.browser.get('/account')
  const res = await a.browser.post('/account/sessions/end-all', formFields(page))
  t.equal(res.status, 200)
  t.notOk(await refreshes(h, a.refreshToken))
  t.notOk(await refreshes(h, b.refreshToken))
  t.ok(await refreshes(h, bob.refreshToken), 'another user is untouched')
  t.match((await a.browser.get('/account')).html, /name="interaction"/, 'signed out here too')
})

t.test('change password: current password through the login gate, the new one twice, the policy; the other sessions end', async (t) => {
  const h = await app(t, { LOGIN_MAX_ATTEMPTS: '3' })
  const a = await signIn(h)
  const b = await signIn(h)
  const change = async (current: string, next: string, again = next): Promise<Page> => {
    const page = await a.browser.get('/account')
    return await a.browser.post('/account/password', { ...formFields(page), current_password: current, new_password: next, new_password_again: again })
  }
  const mismatch = await change('alice-password', 'a-new-password', 'another-password')
  t.equal(mismatch.status, 400)
  t.match(mismatch.html, /do not match/)
  t.notMatch(mismatch.html, /a-new-password/, 'nothing typed is echoed')
  const short = await change('alice-password', 'short')
  t.equal(short.status, 400)
  t.match(short.html, /at least 8 characters/)
  const wrong = await change('not-the-password', 'a-new-password')
  t.equal(wrong.status, 400)
  t.match(wrong.html, /not correct/)
  t.ok(h.logs.events('login.failed').length >= 1, 'counted by the login gate')
  t.ok(await refreshes(h, b.refreshToken), 'nothing changed')

  const ok = await change('alice-password', 'a-new-password')
  t.equal(ok.status, 303)
  t.equal(ok.location, `${h.issuer}/account?notice=password-changed`)
  t.notOk(await refreshes(h, b.refreshToken), 'the other session\'s refresh token fails')
  t.ok(await refreshes(h, a.refreshToken), 'this session lives')
  t.equal((await a.browser.get('/account')).status, 200, 'still signed in here')
  const password = (pw: string) => postToken(h, { grant_type: 'password', username: 'alice', password: pw, scope: 'openid' })
  t.equal((await password('a-new-password')).statusCode, 200, 'the new password works at /token')
  t.equal((await password('alice-password')).statusCode, 400, 'the old one does not')
  const events = h.logs.events('user.password_changed')
  t.equal(events.length, 1)
  t.notMatch(JSON.stringify(events), /a-new-password|alice-password/, 'never the password')
  const audited = await h.deps.audit.search({ events: ['user.password_changed'], limit: 10 })
  t.equal(audited.events.length, 1, 'in the audit trail')
})

t.test('change password: wrong current passwords lock the account out like logins', async (t) => {
  const h = await app(t, { LOGIN_MAX_ATTEMPTS: '3' })
  const a = await signIn(h)
  for (let i = 0; i < 3; i++) {
    const page = await a.browser.get('/account')
    t.equal((await a.browser.post('/account/password', { ...formFields(page), current_password: `wrong-${i}`, new_password: 'a-new-password', new_password_again: 'a-new-password' })).status, 400)
  }
  const page = await a.browser.get('/account')
  const locked = await a.browser.post('/account/password', { ...formFields(page), current_password: 'alice-password', new_password: 'a-new-password', new_password_again: 'a-new-password' })
  t.equal(locked.status, 400, 'the right password is refused while locked out')
  t.ok(h.logs.events('login.locked').length >= 1)
  t.equal((await postToken(h, { grant_type: 'password', username: 'alice', password: 'a-new-password', scope: 'openid' })).statusCode, 400, 'the password was not changed')
})
