/**
 * The verification page (RFC 8628 §3.3) in process: sign-in through the login form and back,
 * the code entry, the confirmation, its protections (CSRF on every form, forms bound to the
 * login session, security headers, no script) and the limits on guessing user codes (§5.1).
 */
import t, { type Test } from 'tap'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { DeviceBrowser, field, poll, startDevice, type Page } from './device-harness.js'

async function started(h: OidcApp, scope = 'openid profile documents:read'): Promise<{ device_code: string; user_code: string; verification_uri_complete: string }> {
  return (await startDevice(h, { client_id: 'cli-device', scope })).json()
}

/** A user code of the right shape that is not `code` (so it is certainly wrong). */
function otherCode(code: string): string {
  return code.startsWith('B') ? `C${code.slice(1)}` : `B${code.slice(1)}`
}

function checkPageHeaders(t: Test, page: Page, what: string): void {
  t.match(page.headers.get('content-security-policy'), /default-src 'none'/, `${what}: CSP`)
  t.match(page.headers.get('content-security-policy'), /form-action 'self'/, `${what}: forms post to us only`)
  t.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/, `${what}: no framing`)
  t.equal(page.headers.get('x-frame-options'), 'DENY', what)
  t.equal(page.headers.get('cache-control'), 'no-store', what)
  t.notMatch(page.html, /<script/i, `${what}: no script, works without JavaScript`)
}

t.test('not signed in: the login form, then back to the page with the code pre-filled, never approved by itself', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const s = await started(h)
  const browser = new DeviceBrowser(h)
  const complete = new URL(s.verification_uri_complete)
  const login = await browser.get(complete.pathname + complete.search)
  t.equal(login.status, 200)
  t.match(login.html, /<title>Sign in – Gatehouse<\/title>/)
  t.match(login.html, /<strong>Connect a device<\/strong>/)
  checkPageHeaders(t, login, 'login page')
  const back = await browser.post('/login', { interaction: field(login.html, 'interaction'), csrf: field(login.html, 'csrf'), username: 'alice', password: 'alice-password' })
  t.equal(back.status, 303)
  t.equal(back.location, `${h.issuer}/device?user_code=${s.user_code}`)
  t.ok(browser.jar.cookies.has('gh_session'), 'signed in')

  const entry = await browser.get(`/device?user_code=${s.user_code}`)
  t.equal(entry.status, 200)
  t.match(entry.html, /<title>Connect a device – Gatehouse<\/title>/)
  t.match(entry.html, /Signed in as <strong>alice<\/strong>/)
  t.match(entry.html, new RegExp(`name="user_code"[^>]* value="${s.user_code}"`), 'pre-filled')
  checkPageHeaders(t, entry, 'entry page')
  t.equal((await poll(h, s.device_code)).json().error, 'authorization_pending', 'opening verification_uri_complete approves nothing')

  const confirm = await browser.post('/device', { form: field(entry.html, 'form'), csrf: field(entry.html, 'csrf'), user_code: s.user_code.toLowerCase().replace('-', ' ') })
  t.equal(confirm.status, 200, 'the code typed in lower case with a space is the same code')
  t.match(confirm.html, /<strong id="client-name">Gatehouse demo CLI \(public client, device sign-in\)<\/strong>/, 'which client')
  t.match(confirm.html, new RegExp(`<strong id="user-code" class="code">${s.user_code}</strong>`), 'which code, to compare with the device')
  t.match(confirm.html, /<ul id="scopes"><li>openid<\/li><li>profile<\/li><li>documents:read<\/li><\/ul>/, 'which scopes')
  checkPageHeaders(t, confirm, 'confirmation page')
  h.clock.advance(5_000)
  t.equal((await poll(h, s.device_code)).json().error, 'authorization_pending', 'still nothing decided')

  const done = await browser.decide(confirm, 'approve')
  t.equal(done.status, 200)
  t.match(done.html, /Device connected/)
  const approved = h.logs.events('device.approved')
  t.equal(approved.length, 1)
  t.match(approved[0], { client_id: 'cli-device', ip: '127.0.0.1' })
  t.ok(approved[0]!.sub)
  const audited = await h.deps.audit.search({ events: ['device.approved'], limit: 10 })
  t.equal(audited.events.length, 1, 'in the audit trail')
  h.clock.advance(5_000)
  t.equal((await poll(h, s.device_code)).statusCode, 200)

  const again = await browser.decide(confirm, 'approve')
  t.equal(again.status, 400, 'the confirmation form is single use')
})

t.test('deny: the device hears access_denied; the decision is audited', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const s = await started(h, 'openid')
  const browser = new DeviceBrowser(h)
  await browser.signIn()
  const confirm = await browser.enter(s.user_code)
  const done = await browser.decide(confirm, 'deny')
  t.equal(done.status, 200)
  t.match(done.html, /Access denied/)
  t.equal(h.logs.events('device.denied').length, 1)
  t.equal((await poll(h, s.device_code)).json().error, 'access_denied')
  const late = await browser.decide(confirm, 'approve')
  t.equal(late.status, 400)
})

t.test('CSRF: every device form refuses a POST without its cookie or with the wrong token', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const s = await started(h)
  const browser = new DeviceBrowser(h)
  await browser.signIn()
  const entry = await browser.get('/device')
  const formId = field(entry.html, 'form')
  const csrf = field(entry.html, 'csrf')

  const noCookie = await browser.post('/device', { form: formId, csrf, user_code: s.user_code }, false)
  t.equal(noCookie.status, 400, 'entry form: no cookies (a cross-site POST with SameSite=Lax cookies withheld)')
  const wrong = await browser.post('/device', { form: formId, csrf: `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`, user_code: s.user_code })
  t.equal(wrong.status, 403, 'entry form: the wrong CSRF token')
  const missing = await browser.post('/device', { form: formId, user_code: s.user_code })
  t.equal(missing.status, 403, 'entry form: no CSRF token')
  t.equal(h.logs.events('device.user_code_failed').length, 0, 'refused before any lookup or count')

  const confirm = await browser.post('/device', { form: formId, csrf, user_code: s.user_code })
  t.equal(confirm.status, 200)
  const confirmId = field(confirm.html, 'confirm')
  const confirmCsrf = field(confirm.html, 'csrf')
  t.equal((await browser.post('/device', { confirm: confirmId, csrf: confirmCsrf, action: 'approve' }, false)).status, 400, 'confirmation: no cookies')
  t.equal((await browser.post('/device', { confirm: confirmId, csrf: csrf, action: 'approve' })).status, 403, 'confirmation: the entry form\'s token is not its token')
  t.equal((await browser.post('/device', { confirm: confirmId, action: 'approve' })).status, 403, 'confirmation: no CSRF token')
  t.equal((await browser.post('/device', { confirm: confirmId, csrf: confirmCsrf, action: 'maybe' })).status, 400, 'confirmation: an unknown action')
  t.equal((await poll(h, s.device_code)).json().error, 'authorization_pending', 'nothing was approved')
  t.equal(h.logs.events('device.approved').length, 0)

  // The login form's own CSRF protection holds for a device sign-in too.
  const other = new DeviceBrowser(h)
  const login = await other.get('/device')
  t.equal((await other.post('/login', { interaction: field(login.html, 'interaction'), csrf: 'x'.repeat(43), username: 'alice', password: 'alice-password' })).status, 403)
})

t.test('the forms are bound to the login session they were shown to', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const s = await started(h)
  const alice = new DeviceBrowser(h)
  await alice.signIn()
  const confirm = await alice.enter(s.user_code)
  t.equal(confirm.status, 200)
  // Bob's browser holding Alice's confirmation cookie and form (a planted or leaked cookie): refused.
  const bob = new DeviceBrowser(h)
  await bob.signIn('/device', 'bob', 'bob-password')
  for (const [k, v] of alice.jar.cookies) if (k.startsWith('gh_devconf_')) bob.jar.cookies.set(k, v)
  const planted = await bob.decide(confirm, 'approve')
  t.equal(planted.status, 400)
  t.equal((await poll(h, s.device_code)).json().error, 'authorization_pending')
  // Signed out meanwhile: nothing is decided either.
  alice.jar.cookies.delete('gh_session')
  const signedOut = await alice.decide(confirm, 'approve')
  t.equal(signedOut.status, 400)
  h.clock.advance(5_000)
  t.equal((await poll(h, s.device_code)).json().error, 'authorization_pending')
})

t.test('guessing user codes: wrong codes counted per session, then locked out, even for a right code', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0', LOGIN_MAX_ATTEMPTS: '3', LOGIN_LOCKOUT: '300' } })
  t.teardown(h.close)
  const s = await started(h)
  const guesser = new DeviceBrowser(h)
  await guesser.signIn()
  for (let i = 0; i < 3; i++) {
    const wrong = await guesser.enter(otherCode(s.user_code))
    t.equal(wrong.status, 400, `wrong code ${i + 1}`)
    t.match(wrong.html, /That code is not valid/)
    t.match(wrong.html, /role="alert"/)
  }
  const malformed = await guesser.enter('not a code')
  t.equal(malformed.status, 429, 'the fourth attempt is refused')
  const right = await guesser.enter(s.user_code)
  t.equal(right.status, 429, 'locked: even the right code is not looked up')
  t.match(right.html, /Too many wrong codes were entered/)
  t.match(right.html, /Try again in 5 minutes/)
  const failed = h.logs.events('device.user_code_failed')
  t.equal(failed.length, 3, 'each wrong code is logged')
  t.notOk(h.logs.text.includes(otherCode(s.user_code)), 'the guessed codes are not logged')
  t.ok(h.logs.events('device.user_code_locked').length >= 1)

  const owner = new DeviceBrowser(h, '127.0.0.2')
  await owner.signIn('/device', 'bob', 'bob-password')
  t.equal((await owner.enter(s.user_code)).status, 200, 'another session elsewhere is not locked out')

  h.clock.advance(300_000)
  t.equal((await guesser.enter(s.user_code)).status, 200, 'the lockout ends')
})

t.test('guessing user codes: counted per address across sessions', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0', LOGIN_MAX_ATTEMPTS: '10', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '4' } })
  t.teardown(h.close)
  const s = await started(h)
  let refused = 0
  for (let i = 0; i < 3; i++) {
    // A fresh session (sign in again) for every two guesses: the per-session bucket never fills.
    const b = new DeviceBrowser(h, '10.0.0.7')
    await b.signIn()
    for (const _ of [1, 2]) if ((await b.enter(otherCode(s.user_code))).status === 429) refused++
  }
  t.equal(refused, 2, 'the address bucket (4) locks the fifth and sixth guesses')
  t.equal(h.logs.events('device.user_code_failed').length, 4)
})

t.test('a request the user cannot see anymore: expired or already decided', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0', DEVICE_CODE_TTL: '300' } })
  t.teardown(h.close)
  const s = await started(h)
  const browser = new DeviceBrowser(h)
  await browser.signIn()
  const confirm = await browser.enter(s.user_code)
  h.clock.advance(300_000)
  const late = await browser.decide(confirm, 'approve')
  t.equal(late.status, 400)
  t.match(late.html, /expired or was already used/)
  t.equal((await browser.enter(s.user_code)).status, 400, 'an expired code is a wrong code')
})

t.test('malformed requests get a page, never JSON or a stack trace', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const json = await h.app.inject({ method: 'POST', url: '/device', headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.equal(json.statusCode, 400)
  t.match(json.headers['content-type'], /text\/html/)
  const repeated = await h.app.inject({ method: 'GET', url: '/device?user_code=a&user_code=b' })
  t.equal(repeated.statusCode, 400)
  t.match(repeated.headers['content-type'], /text\/html/)
  const long = await h.app.inject({ method: 'GET', url: `/device?user_code=${'B'.repeat(100)}` })
  t.equal(long.statusCode, 400)
  t.match(long.headers['content-type'], /text\/html/)
  const xss = await h.app.inject({ method: 'GET', url: `/device?user_code=${encodeURIComponent('"><script>x</script>')}` })
  t.notMatch(xss.body, /<script>x/, 'nothing reflected unescaped')
})
