/**
 * The account page's second factors (DESIGN §10.5; routes/account.ts): setting up an
 * authenticator app (QR code and secret shown, the factor made only by a first correct code, the
 * pending secret sealed in the form's cookie, never in the page's fields), recovery codes (shown
 * once, a new set replaces the old), removing one's own factors only; each needs a recent
 * sign-in; each form CSRF-protected like the page's others; audit events.
 */
import t from 'tap'
import { CookieJar } from '@gatehouse/test-harness'
import { totpCode } from '../../src/mfa/totp.js'
import { RECENT_SIGN_IN_SECONDS } from '../../src/account/recent-sign-in.js'
import type { OidcApp } from '../oidc/harness.js'
import { DeviceBrowser, answer, enrolTotp, field, formFields, generateCodes, mfaApp, nextStep, passwordStep, secretOf, signedIn, startTotp } from '../mfa/mfa-harness.js'

async function factorsOf(h: OidcApp, username = 'alice') {
  return await h.deps.factors.list((await h.deps.users.findByUsername(username))!.id)
}

function factorIds(html: string): string[] {
  return [...html.matchAll(/name="factor" value="([^"]*)"/g)].map((m) => m[1]!)
}

t.test('the section lists nothing at first and offers an app and recovery codes', async (t) => {
  const h = await mfaApp(t)
  const page = await (await signedIn(h)).get('/account')
  t.match(page.html, /<h2 id="factors-heading">Second factors<\/h2>/)
  t.match(page.html, /None yet/)
  t.match(page.html, /<button type="submit">Set up an authenticator app<\/button>/)
  t.match(page.html, /<button type="submit">Generate recovery codes<\/button>/)
  t.match(page.html, new RegExp(`action="${h.issuer}/account/totp/start"`), 'absolute form actions')
})

t.test('set up an authenticator app: QR code and secret, made only by a first correct code', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  const page = await startTotp(alice)
  t.equal(page.status, 200)
  t.match(page.html, /<title>Set up an authenticator app – Gatehouse<\/title>/)
  t.match(page.html, /<div class="qr" role="img" aria-label="[^"]+"><svg xmlns="http:\/\/www.w3.org\/2000\/svg"/, 'an inline SVG QR code')
  t.notMatch(page.html, /<img|<script/i)
  const secret = secretOf(page)
  t.match(secret, /^[A-Z2-7]{32}$/)
  t.match(page.html, /id="totp-secret">[A-Z2-7]{4} [A-Z2-7]{4} /, 'in groups for typing')
  t.notMatch(page.html, new RegExp(`value="[^"]*${secret}`), 'never in a hidden field')
  t.notOk(JSON.stringify([...alice.jar.cookies.values()]).includes(secret), 'the cookie holds it sealed, not in the clear')
  t.match(page.html, /autocomplete="one-time-code"/)
  t.same(await factorsOf(h), [], 'nothing stored before the code')

  const wrong = await alice.post('/account/totp/confirm', { ...formFields(page), code: String((Number(totpCode(secret, h.clock.now())) + 1) % 1_000_000).padStart(6, '0') })
  t.equal(wrong.status, 400)
  t.match(wrong.html, /That code is not correct/)
  t.equal(secretOf(wrong), secret, 'the same secret, to try again')
  t.same(await factorsOf(h), [])
  t.equal((await alice.post('/account/totp/confirm', { ...formFields(page), code: 'abc' })).status, 400)

  const done = await alice.post('/account/totp/confirm', { ...formFields(page), code: totpCode(secret, h.clock.now()) })
  t.equal(done.status, 303)
  t.equal(done.location, `${h.issuer}/account?notice=totp-enrolled`)
  t.match(done.headers.get('set-cookie'), /gh_account_[^=]+=;/, 'the enrolment\'s form (and its sealed secret) is cleared')
  const [factor] = await factorsOf(h)
  t.match(factor, { kind: 'totp', label: 'Authenticator app', lastUsedAt: undefined })
  t.notOk(JSON.stringify(factor).includes(secret), 'stored sealed')
  t.match(h.logs.events('mfa.enrolled').at(-1), { kind: 'totp', factor_id: factor!.id })

  const account = await alice.get('/account?notice=totp-enrolled')
  t.match(account.html, /<li class="factor factor-totp" id="factor-[^"]+"><strong>Authenticator app<\/strong><br>Added \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC<br>Never used/)
  t.notMatch(account.html, /Set up an authenticator app/, 'one app at most')
  t.same(factorIds(account.html), [factor!.id])
  // Starting again (an old page) or confirming the same form again: refused.
  t.equal((await alice.post('/account/totp/start', formFields(account))).status, 400)
  t.equal((await alice.post('/account/totp/confirm', { ...formFields(page), code: totpCode(secret, h.clock.now()) })).status, 400)
  t.equal((await factorsOf(h)).length, 1)

  nextStep(h)
  const { browser, page: step } = await passwordStep(h)
  t.equal((await answer(browser, step, { code: totpCode(secret, h.clock.now()) })).status, 303)
  t.match((await alice.get('/account')).html, /Last used \d{4}-/)
})

t.test('setting up an app ends the user\'s other sessions and their refresh tokens (one signed in with a stolen password too)', async (t) => {
  const h = await mfaApp(t)
  const thief = await signedIn(h, 'alice', '203.0.113.7')
  t.match((await thief.get('/account')).html, /account-username">alice</)
  const token = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('cli:cli-secret').toString('base64')}` }, payload: 'grant_type=password&username=alice&password=alice-password' })
  t.equal(token.statusCode, 200, 'a password-grant family from before')
  const alice = await signedIn(h)
  await enrolTotp(h, alice)
  t.match((await thief.get('/account')).html, /name="interaction"/, 'the other browser is signed out')
  t.match((await alice.get('/account')).html, /account-username">alice</, 'the enrolling browser stays signed in')
  t.match((await alice.get('/account?notice=totp-enrolled')).html, /Your other sessions were signed out/)
  const refresh = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('cli:cli-secret').toString('base64')}` }, payload: `grant_type=refresh_token&refresh_token=${encodeURIComponent(token.json().refresh_token)}` })
  t.equal(refresh.statusCode, 400, 'its refresh tokens are revoked')
  t.match(h.logs.events('mfa.enrolled').at(-1), { kind: 'totp', sessions_ended: 1, families_revoked: 1 })
})

t.test('remove the authenticator app: own factors only; signing in needs the password alone again', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  await enrolTotp(h, alice)
  const bob = await signedIn(h, 'bob')
  await enrolTotp(h, bob)
  const bobFactor = (await factorsOf(h, 'bob'))[0]!
  const page = await alice.get('/account')
  const refused = await alice.post('/account/factors/remove', { ...formFields(page), factor: bobFactor.id })
  t.equal(refused.status, 400, 'bob\'s factor id, refused')
  t.match(refused.html, /not one of yours/)
  t.equal((await factorsOf(h, 'bob')).length, 1, 'bob keeps his factor')
  t.equal((await alice.post('/account/factors/remove', { ...formFields(page), factor: 'no-such-factor' })).status, 400)

  const [mine] = factorIds(page.html)
  const removed = await alice.post('/account/factors/remove', { ...formFields(page), factor: mine! })
  t.equal(removed.status, 303)
  t.equal(removed.location, `${h.issuer}/account?notice=factor-removed`)
  t.same(await factorsOf(h), [])
  t.match(h.logs.events('mfa.removed').at(-1), { kind: 'totp', factor_id: mine })
  t.match((await alice.get('/account?notice=factor-removed')).html, /The second factor was removed\./)
  const again = new DeviceBrowser(h)
  t.equal((await again.signIn('/account')).status, 303, 'no second step any more')
})

t.test('recovery codes: shown once, counted on the page, a new set replaces the old', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  await enrolTotp(h, alice)
  const first = await generateCodes(alice)
  t.equal(first.length, 10)
  t.match(h.logs.events('mfa.recovery_codes_generated').at(-1), { kind: 'recovery', count: 10, replaced: false })
  const account = await alice.get('/account')
  t.match(account.html, /<strong>Recovery codes<\/strong><br><span class="codes-left">10 of 10 left<\/span>/)
  t.match(account.html, /Replace recovery codes/)
  for (const c of first) t.notOk(account.html.includes(c), 'never shown again')
  const stored = (await factorsOf(h)).find((f) => f.kind === 'recovery')!
  t.notOk(JSON.stringify(stored).includes(first[0]!.replace('-', '')), 'kept as digests')

  const second = await generateCodes(alice)
  t.match(h.logs.events('mfa.recovery_codes_generated').at(-1), { replaced: true })
  t.equal((await factorsOf(h)).filter((f) => f.kind === 'recovery').length, 1, 'one set')
  const old = await passwordStep(h)
  t.equal((await answer(old.browser, old.page, { recovery_code: first[0]! })).status, 400, 'an old code no longer works')
  t.equal((await answer(old.browser, old.page, { recovery_code: second[0]! })).status, 303, 'a new one does')
})

t.test('each second-factor form needs a recent sign-in; signing in again (password and code) allows it', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  const secret = await enrolTotp(h, alice)
  const enrolPage = await startTotp(await signedIn(h, 'bob'))
  h.clock.advance((RECENT_SIGN_IN_SECONDS + 1) * 1000)
  const page = await alice.get('/account')
  const [factor] = factorIds(page.html)
  for (const [path, fields] of [
    ['/account/totp/start', {}],
    ['/account/factors/remove', { factor: factor! }],
    ['/account/recovery-codes', {}],
  ] as const) {
    const res = await alice.post(path, { ...formFields(page), ...fields })
    t.equal(res.status, 200, path)
    t.match(res.html, /<title>Sign in – Gatehouse<\/title>/, `${path}: the login form`)
    t.match(res.html, /Sign in again to change your second factors\./)
  }
  t.same((await factorsOf(h)).map((f) => f.kind), ['totp'], 'nothing changed')
  t.equal(h.logs.events('mfa.removed').length + h.logs.events('mfa.recovery_codes_generated').length, 0)
  // Bob's enrolment, begun in time, confirmed too late.
  const bob = await signedIn(h, 'bob')
  h.clock.advance((RECENT_SIGN_IN_SECONDS + 1) * 1000)
  const late = await bob.post('/account/totp/start', formFields(await bob.get('/account')))
  t.match(late.html, /Sign in again/)
  t.ok(enrolPage)

  // Sign in again on that login form: password, then the second step, back to the page.
  const login = await alice.post('/account/recovery-codes', formFields(await alice.get('/account')))
  const step = await alice.post('/login', { interaction: field(login.html, 'interaction'), csrf: field(login.html, 'csrf'), username: 'alice', password: 'alice-password' })
  t.equal(step.status, 200)
  nextStep(h)
  const back = await answer(alice, step, { code: totpCode(secret, h.clock.now()) })
  t.equal(back.status, 303)
  t.equal(back.location, `${h.issuer}/account`)
  const codes = await generateCodes(alice)
  t.equal(codes.length, 10, 'now allowed')
  t.equal((await alice.get('/account')).status, 200, 'the same session goes on')
})

t.test('CSRF: every second-factor form refuses a missing cookie, a wrong token and a form of another sign-in; nothing is done', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  // Another sign-in (bob's: alice's other sessions end when she sets up the app).
  const other = await signedIn(h, 'bob')
  const secret = await enrolTotp(h, alice)
  const page = await alice.get('/account')
  const [factor] = factorIds(page.html)
  const f = formFields(page)
  const otherPage = await other.get('/account')
  const forms: Array<[string, Record<string, string>]> = [
    ['/account/totp/start', {}],
    ['/account/totp/confirm', { code: totpCode(secret, h.clock.now()) }],
    ['/account/factors/remove', { factor: factor! }],
    ['/account/recovery-codes', {}],
  ]
  for (const [path, fields] of forms) {
    t.equal((await alice.post(path, { ...f, ...fields }, false)).status, 400, `${path}: no cookies`)
    t.equal((await alice.post(path, { ...f, csrf: `${f.csrf.slice(0, -2)}AA`, ...fields })).status, 403, `${path}: wrong token`)
    t.equal((await alice.post(path, { ...f, csrf: '', ...fields })).status, 403, `${path}: no token`)
    const jar = new CookieJar()
    for (const [k, v] of other.jar.cookies) if (k.startsWith('gh_account_')) jar.cookies.set(k, v)
    for (const [k, v] of alice.jar.cookies) if (!k.startsWith('gh_account_')) jar.cookies.set(k, v)
    const res = await h.app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() }, payload: new URLSearchParams({ ...formFields(otherPage), ...fields }).toString() })
    t.equal(res.statusCode, 403, `${path}: a form shown to another sign-in`)
  }
  t.same((await factorsOf(h)).map((f) => f.kind), ['totp'], 'nothing was done')
  t.equal(h.logs.events('mfa.removed').length + h.logs.events('mfa.recovery_codes_generated').length, 0)
  t.ok(h.logs.events('account.form_rejected').length >= 16, 'each refusal logged')
  t.same(h.logs.lines.map((l) => JSON.parse(l) as { level: number }).filter((l) => l.level >= 50), [], 'refusals are not server errors')
  // The confirm form needs the enrolment's own form (with its sealed secret): the page's plain form is refused.
  t.equal((await alice.post('/account/totp/confirm', { ...f, code: '123456' })).status, 400)
})

t.test('a page answering a form keeps its forms under /account (absolute actions)', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  const wrongPassword = await alice.post('/account/password', { ...formFields(await alice.get('/account')), current_password: 'nope', new_password: 'whatever-1', new_password_again: 'whatever-1' })
  t.equal(wrongPassword.status, 400)
  for (const m of wrongPassword.html.matchAll(/action="([^"]*)"/g)) t.match(m[1], new RegExp(`^${h.issuer}/account/[a-z/-]+$`))
})
