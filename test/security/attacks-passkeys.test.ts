/**
 * Attack regressions against passkeys (issue 16, DESIGN §10.5), in process with a software
 * authenticator (services/auth/test/mfa/software-authenticator.ts) on the issuer
 * http://localhost:4000: an assertion made for another site (its origin in clientDataJSON) or
 * another RP ID, a response replayed (the same one posted twice, with the cookies it came with)
 * and a cloned authenticator (a counter that does not grow), enrolment by a browser whose sign-in
 * is no longer recent, cross-site posts to the passkey forms, a ceremony of another pending
 * login, a disabled user's passkey, and malformed credentials (never a 500). Each leaves no
 * session and, where it applies, an `mfa.failed` audit event.
 */
import t, { type Test } from 'tap'
import { DeviceBrowser, field, type Page } from '../../services/auth/test/device/device-harness.js'
import { SoftwareAuthenticator } from '../../services/auth/test/mfa/software-authenticator.js'
import { adminOf, authorizeQuery, startOidcApp, REDIRECT_URI, type OidcApp } from './auth-fixture.js'

const ISSUER = 'http://localhost:4000'

async function start(t: Test): Promise<OidcApp> {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0', ISSUER } })
  t.teardown(h.close)
  return h
}

function unescape(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
}

/** The options of the page's passkey ceremony. */
function options(page: Page): { challenge: string; user: { id: string } } {
  const raw = /data-options="([^"]*)"/.exec(page.html)?.[1]
  if (raw === undefined) throw new Error(`no passkey ceremony in the page: ${page.html.slice(0, 300)}`)
  return JSON.parse(unescape(raw)) as { challenge: string; user: { id: string } }
}

/** The ceremony's hidden fields. */
function ceremonyFields(page: Page): Record<string, string> {
  return { ceremony: field(page.html, 'ceremony'), ceremony_csrf: field(page.html, 'ceremony_csrf') }
}

/** alice signed in at /account with a fresh authenticator enrolled. */
async function aliceWithPasskey(h: OidcApp): Promise<{ browser: DeviceBrowser; auth: SoftwareAuthenticator }> {
  const browser = new DeviceBrowser(h)
  await browser.signIn('/account')
  const page = await browser.get('/account')
  const auth = new SoftwareAuthenticator(ISSUER, 'localhost')
  const res = await browser.post('/account/passkeys', { form: field(page.html, 'form'), csrf: field(page.html, 'csrf'), ...ceremonyFields(page), credential: auth.register(options(page)) })
  if (res.location !== `${ISSUER}/account?notice=passkey-added`) throw new Error(`not enrolled: ${res.status} ${res.location}`)
  return { browser, auth }
}

/** A fresh browser at the login page of an authorization request. */
async function loginPage(h: OidcApp, address = '127.0.0.1'): Promise<{ browser: DeviceBrowser; page: Page; fields: Record<string, string> }> {
  const browser = new DeviceBrowser(h, address)
  const page = await browser.get(`/authorize?${authorizeQuery()}`)
  if (page.status !== 200) throw new Error(`no login page: ${page.status}`)
  return { browser, page, fields: { interaction: field(page.html, 'interaction'), csrf: field(page.html, 'csrf'), ...ceremonyFields(page) } }
}

async function failures(h: OidcApp): Promise<Array<{ details: Record<string, unknown> }>> {
  await h.deps.audit.flush()
  return (await h.deps.audit.search({ events: ['mfa.failed'], limit: 50 })).events
}

function signedIn(browser: DeviceBrowser): boolean {
  return browser.jar.cookies.has('gh_session')
}

t.test('the genuine passkey signs alice in (the baseline the attacks bend)', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  const { browser, page, fields } = await loginPage(h)
  const res = await browser.post('/login/passkey', { ...fields, credential: auth.assert(options(page)) })
  t.equal(res.status, 303)
  t.match(res.location, new RegExp(`^${REDIRECT_URI}\\?code=`))
  t.ok(signedIn(browser))
  const alice = (await h.deps.users.findByUsername('alice'))!
  t.same((await h.deps.sessions.listByUser(alice.id)).map((s) => s.amr).find((amr) => amr.includes('hwk')), ['hwk', 'user', 'mfa'])
})

t.test('an assertion made for another site or another RP ID is refused', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  for (const [what, bend] of [
    ['clientDataJSON origin of another site', { origin: 'https://gatehouse.evil.example' }],
    ['an http origin of the same host name on another port', { origin: 'http://localhost:4001' }],
    ['the RP ID hash of another site', { rpId: 'evil.example' }],
  ] as const) {
    const { browser, page, fields } = await loginPage(h)
    const res = await browser.post('/login/passkey', { ...fields, credential: auth.assert(options(page), bend) })
    t.equal(res.status, 400, what)
    t.match(res.html, /Signing in with that passkey did not work/, `${what}: the generic message`)
    t.match(res.html, /data-options=/, `${what}: a new ceremony to try again`)
    t.notOk(signedIn(browser), `${what}: no session`)
  }
  t.same((await failures(h)).map((e) => e.details.reason), ['wrong', 'wrong', 'wrong'])
})

t.test('a replayed response and a cloned authenticator are refused', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  const { browser, page, fields } = await loginPage(h)
  const credential = auth.assert(options(page))
  const cookies = new Map(browser.jar.cookies)
  t.equal((await browser.post('/login/passkey', { ...fields, credential })).status, 303, 'the first post signs in')

  // The attacker has everything the browser had: the cookies (pending login and ceremony) and the response.
  const attacker = new DeviceBrowser(h, '203.0.113.9')
  for (const [k, v] of cookies) attacker.jar.cookies.set(k, v)
  const replay = await attacker.post('/login/passkey', { ...fields, credential })
  t.equal(replay.status, 400, 'the same response posted again')
  t.notOk(signedIn(attacker))

  // A fresh ceremony, answered by a copy of the key that lags behind (counter 1, already seen).
  const second = await loginPage(h)
  const cloned = await second.browser.post('/login/passkey', { ...second.fields, credential: auth.assert(options(second.page), { counter: 1 }) })
  t.equal(cloned.status, 400, 'a counter that does not grow')
  t.notOk(signedIn(second.browser))
  t.same((await failures(h)).map((e) => e.details.reason), ['replayed', 'replayed'])
})

t.test('a replayed response of an authenticator without a counter is refused by its spent challenge', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  const { browser, page, fields } = await loginPage(h)
  // Many synced passkeys always report 0: only the single-use challenge stops a replay.
  const credential = auth.assert(options(page), { counter: 0 })
  const cookies = new Map(browser.jar.cookies)
  t.equal((await browser.post('/login/passkey', { ...fields, credential })).status, 303, 'the first post signs in')
  const attacker = new DeviceBrowser(h, '203.0.113.9')
  for (const [k, v] of cookies) attacker.jar.cookies.set(k, v)
  const replay = await attacker.post('/login/passkey', { ...fields, credential })
  t.equal(replay.status, 400)
  t.notOk(signedIn(attacker))
  t.same((await failures(h)).map((e) => e.details.reason), ['replayed'])
  const next = await loginPage(h)
  t.equal((await next.browser.post('/login/passkey', { ...next.fields, credential: auth.assert(options(next.page), { counter: 0 }) })).status, 303, 'a new ceremony with counter 0 still works')
})

t.test('a ceremony of another pending login, or none, signs nobody in', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  const a = await loginPage(h)
  const b = await loginPage(h)
  // b's browser posts its own pending login with a's ceremony (cookie and fields copied over).
  for (const [k, v] of a.browser.jar.cookies) if (k.startsWith('gh_pk_login_')) b.browser.jar.cookies.set(k, v)
  const mixed = await b.browser.post('/login/passkey', { ...b.fields, ceremony: a.fields.ceremony!, ceremony_csrf: a.fields.ceremony_csrf!, credential: auth.assert(options(a.page)) })
  t.equal(mixed.status, 400)
  t.notOk(signedIn(b.browser))
  const none = await b.browser.post('/login/passkey', { interaction: b.fields.interaction!, csrf: b.fields.csrf!, credential: auth.assert(options(b.page)) })
  t.equal(none.status, 400, 'no ceremony fields')
  t.notOk(signedIn(b.browser))
})

t.test('cross-site posts to the passkey forms change nothing', async (t) => {
  const h = await start(t)
  // alice's browser, signed in (with a passkey now, a password sign-in would ask for it as a second step).
  const { browser: victim, auth } = await aliceWithPasskey(h)
  // /login/passkey: the pending login's CSRF token is needed, as at /login.
  const { browser, page, fields } = await loginPage(h)
  const forged = await browser.post('/login/passkey', { ...fields, csrf: 'guessed', credential: auth.assert(options(page)) })
  t.equal(forged.status, 403)
  t.notOk(signedIn(browser))
  const noCookies = await browser.post('/login/passkey', { ...fields, credential: auth.assert(options(page)) }, false)
  t.equal(noCookies.status, 400, 'without the pending-login cookie')
  t.notOk(signedIn(browser))

  // /account/passkeys: the victim's cookies with the attacker's own account form and ceremony.
  const attacker = new DeviceBrowser(h, '203.0.113.9')
  await attacker.signIn('/account', 'bob', 'bob-password')
  const attackerPage = await attacker.get('/account')
  const attackerKey = new SoftwareAuthenticator(ISSUER, 'localhost')
  const res = await victim.post('/account/passkeys', { form: field(attackerPage.html, 'form'), csrf: field(attackerPage.html, 'csrf'), ...ceremonyFields(attackerPage), credential: attackerKey.register(options(attackerPage)) })
  t.equal(res.status, 400, 'the attacker\'s form id and token are not the victim\'s')
  const victimPage = await victim.get('/account')
  const guessed = await victim.post('/account/passkeys', { form: field(victimPage.html, 'form'), csrf: 'guessed', ...ceremonyFields(victimPage), credential: attackerKey.register(options(victimPage)) })
  t.equal(guessed.status, 403, 'a guessed CSRF token')
  const bob = (await h.deps.users.findByUsername('bob'))!
  const alice = (await h.deps.users.findByUsername('alice'))!
  t.equal((await h.deps.factors.list(alice.id)).length, 1, 'alice still has only her own passkey')
  t.equal((await h.deps.factors.list(bob.id)).length, 0)
  // Removing: only one's own passkey.
  const mine = (await h.deps.factors.list(alice.id))[0]!
  const removal = await attacker.post('/account/passkeys/remove', { form: field(attackerPage.html, 'form'), csrf: field(attackerPage.html, 'csrf'), factor: mine.id })
  t.equal(removal.status, 400, 'bob cannot remove alice\'s passkey')
  t.equal((await h.deps.factors.list(alice.id)).length, 1)
})

t.test('enrolment needs a recent sign-in', async (t) => {
  const h = await start(t)
  const browser = new DeviceBrowser(h)
  await browser.signIn('/account')
  h.clock.advance(4 * 60_000)
  const page = await browser.get('/account')
  const ceremony = ceremonyFields(page)
  h.clock.advance(90_000) // the sign-in is now 5.5 minutes old; the ceremony (5 minutes) is still good
  const res = await browser.post('/account/passkeys', { form: field(page.html, 'form'), csrf: field(page.html, 'csrf'), ...ceremony, credential: new SoftwareAuthenticator(ISSUER, 'localhost').register(options(page)) })
  t.equal(res.status, 200)
  t.match(res.html, /<title>Sign in – Gatehouse<\/title>/, 'the login form asks again')
  t.match(res.html, /action="\/login"/, 'posting to an absolute path (answered at /account/passkeys)')
  const alice = (await h.deps.users.findByUsername('alice'))!
  t.same(await h.deps.factors.list(alice.id), [], 'no passkey added')
  const later = await browser.get('/account')
  t.notMatch(later.html, /data-options=/, 'the page offers no ceremony until the user signs in again')
  t.match(later.html, /Add a passkey/, 'only the button that asks for the password first')

  // Signing in again (the same session, a new auth_time) makes enrolment possible.
  await browser.post('/login', { interaction: field(res.html, 'interaction'), csrf: field(res.html, 'csrf'), username: 'alice', password: 'alice-password' })
  const fresh = await browser.get('/account')
  const added = await browser.post('/account/passkeys', { form: field(fresh.html, 'form'), csrf: field(fresh.html, 'csrf'), ...ceremonyFields(fresh), credential: new SoftwareAuthenticator(ISSUER, 'localhost').register(options(fresh)) })
  t.equal(added.location, `${ISSUER}/account?notice=passkey-added`)
})

t.test('a disabled user\'s passkey signs nobody in', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  await adminOf(h).disableUser('alice')
  const { browser, page, fields } = await loginPage(h)
  const res = await browser.post('/login/passkey', { ...fields, credential: auth.assert(options(page)) })
  t.equal(res.status, 400)
  t.notOk(signedIn(browser))
  t.same((await failures(h)).map((e) => e.details.reason), ['unknown'])
})

t.test('malformed credentials and wrong types are answered with the login page, never a 500', async (t) => {
  const h = await start(t)
  const { auth } = await aliceWithPasskey(h)
  const { browser, page, fields } = await loginPage(h)
  const good = JSON.parse(auth.assert(options(page))) as Record<string, unknown>
  const inputs = ['{', '[]', 'null', '"x"', '{"id":{}}', JSON.stringify({ ...good, response: 'x' }), JSON.stringify({ ...good, rawId: 12 }), JSON.stringify({ ...good, type: ['public-key'] }), JSON.stringify({ ...good, id: 'AAAA' })]
  for (const credential of inputs) {
    const res = await browser.post('/login/passkey', { ...fields, credential })
    t.equal(res.status, 400, credential.slice(0, 40))
    t.match(res.html, /<title>Sign in – Gatehouse<\/title>/)
  }
  const repeated = await h.app.inject({ method: 'POST', url: '/login/passkey', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: browser.jar.header() }, payload: `${new URLSearchParams(fields)}&credential=a&credential=b` })
  t.equal(repeated.statusCode, 400, 'a repeated field')
  const huge = await browser.post('/login/passkey', { ...fields, credential: 'x'.repeat(20_000) })
  t.equal(huge.status, 400, 'beyond the schema\'s bound')
  const json = await h.app.inject({ method: 'POST', url: '/login/passkey', headers: { 'content-type': 'application/json', cookie: browser.jar.header() }, payload: JSON.stringify({ ...fields, credential: good }) })
  t.ok(json.statusCode >= 400 && json.statusCode < 500, 'JSON is not a form')
  t.notOk(signedIn(browser))
})

t.test('with an IP address as the issuer, passkeys are not offered and the endpoints refuse cleanly', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const browser = new DeviceBrowser(h)
  const page = await browser.get(`/authorize?${authorizeQuery()}`)
  t.notMatch(page.html, /passkey/i, 'the login page says nothing of passkeys')
  t.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/)
  t.notMatch(page.headers.get('content-security-policy') ?? '', /script-src/, 'and allows no script')
  const res = await browser.post('/login/passkey', { interaction: field(page.html, 'interaction'), csrf: field(page.html, 'csrf'), credential: '{}' })
  t.equal(res.status, 400)
  t.match(res.html, /Passkeys are not available here/)
  await browser.signIn('/account')
  const account = await browser.get('/account')
  t.notMatch(account.html, /passkey/i, 'the account page says nothing of passkeys')
  const post = await browser.post('/account/passkeys', { form: field(account.html, 'form'), csrf: field(account.html, 'csrf') })
  t.equal(post.status, 404)
})
