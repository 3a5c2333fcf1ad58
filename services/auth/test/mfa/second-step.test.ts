/**
 * The second step of the password sign-in over HTTP (signin/second-step.ts, POST
 * /login/second-factor): no session before it; a TOTP code signs in with amr `pwd otp mfa`; a
 * wrong code shows the page again; a code is accepted once (its step, RFC 6238 §5.2); guessing
 * is locked out like passwords, and a lockout refuses even a correct code; a recovery code works
 * once; the step's cookie is CSRF-bound, expires, never carries the password, and is void once
 * the password changes; audit events; nothing secret in the logs.
 */
import t from 'tap'
import { totpCode } from '../../src/mfa/totp.js'
import { secondStepNeeded } from '../../src/signin/second-step.js'
import { hashPassword } from '../../src/directory/passwords.js'
import type { Factor } from '../../src/mfa/factors.js'
import { CookieJar } from '@gatehouse/test-harness'
import { REDIRECT_URI, authorizeUrl, exchange } from '../oidc/resource-fixture.js'
import { DeviceBrowser, answer, enrolTotp, field, generateCodes, mfaApp, nextStep, passwordStep, signedIn, stepFields } from './mfa-harness.js'

const STEP_TITLE = /<title>Two-step verification – Gatehouse<\/title>/

t.test('secondStepNeeded: a TOTP or a passkey; recovery codes alone do not count', async (t) => {
  const base = { userId: 'u', label: '', createdAt: 0 }
  const totp: Factor = { ...base, id: 't', kind: 'totp', sealedSecret: 'x', lastStep: -1 }
  const passkey: Factor = { ...base, id: 'p', kind: 'passkey', credentialId: 'c', publicKey: 'k', counter: 0, transports: [] }
  const recovery: Factor = { ...base, id: 'r', kind: 'recovery', codeHashes: ['h'], total: 1 }
  t.equal(secondStepNeeded([]), false)
  t.equal(secondStepNeeded([recovery]), false)
  t.equal(secondStepNeeded([totp]), true)
  t.equal(secondStepNeeded([passkey, recovery]), true)
})

t.test('enrol TOTP, sign out, sign in with password + code: no session before the code; amr pwd otp mfa', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  const secret = await enrolTotp(h, alice)
  t.match((await alice.get('/account?notice=totp-enrolled')).html, /Your authenticator app is set up/)
  t.equal(h.logs.events('mfa.enrolled').length, 1)

  const { browser, page } = await passwordStep(h)
  t.equal(page.status, 200, 'the password alone starts no session')
  t.match(page.html, STEP_TITLE)
  t.match(page.html, /autocomplete="one-time-code"/)
  t.match(page.html, /inputmode="numeric"/)
  t.notMatch(page.html, /Use a recovery code instead/, 'no recovery codes, no recovery form')
  t.notMatch(page.html, /passkey-step/, 'no passkey, no passkey slot')
  t.notOk([...browser.jar.cookies.keys()].some((k) => k === 'gh_session'), 'no session cookie yet')
  t.equal((await h.deps.sessions.listByUser((await h.deps.users.findByUsername('alice'))!.id)).length, 1, 'only the enrolling browser\'s session')
  t.match((await browser.get('/account')).html, /name="interaction"/, 'the account page still asks to sign in')
  t.match(page.headers.get('content-security-policy'), /default-src 'none'/)
  t.equal(page.headers.get('cache-control'), 'no-store')

  // The step's cookie: path under /login, five minutes, HttpOnly, never the password.
  const setCookie = page.headers.get('set-cookie') ?? ''
  t.match(setCookie, /gh_mfa_[A-Za-z0-9_-]{16}=[^;]+; Max-Age=300; Path=\/login; HttpOnly; SameSite=Lax/)
  const value = decodeURIComponent(/gh_mfa_[A-Za-z0-9_-]{16}=([^;]+)/.exec(setCookie)![1]!)
  const content = Buffer.from(value.slice(0, value.lastIndexOf('.')), 'base64url').toString('utf8')
  t.notMatch(content, /alice-password/, 'the password is never carried')
  t.match(JSON.parse(content), { userId: String, interactionId: String })

  nextStep(h)
  const done = await answer(browser, page, { code: totpCode(secret, h.clock.now()) })
  t.equal(done.status, 303)
  t.equal(done.location, `${h.issuer}/account`)
  t.match(done.headers.get('set-cookie'), /gh_mfa_[^=]+=;/, 'the step\'s cookie is cleared')
  t.match((await browser.get('/account')).html, /account-username">alice</)
  const user = (await h.deps.users.findByUsername('alice'))!
  const sessions = await h.deps.sessions.listByUser(user.id)
  t.equal(sessions.length, 2)
  t.same(sessions.at(-1)!.amr, ['pwd', 'otp', 'mfa'])
  t.match(h.logs.events('login.succeeded').at(-1), { sub: user.id, amr: ['pwd', 'otp', 'mfa'] })
  t.match(h.logs.events('login.succeeded').at(0), { amr: ['pwd'] }, 'a password-only sign-in says so')
})

t.test('a wrong code: the page again with a generic error, audited; the code of the enrolment itself cannot sign in', async (t) => {
  const h = await mfaApp(t)
  const secret = await enrolTotp(h, await signedIn(h))
  const { browser, page } = await passwordStep(h)
  const wrongCode = String((Number(totpCode(secret, h.clock.now())) + 1) % 1_000_000).padStart(6, '0')
  const wrong = await answer(browser, page, { code: wrongCode })
  t.equal(wrong.status, 400)
  t.match(wrong.html, STEP_TITLE)
  t.match(wrong.html, /That code is not correct or has already been used\./)
  t.match(wrong.html, /aria-invalid="true"/)
  t.equal(field(wrong.html, 'step'), stepFields(page).step, 'the same step goes on')
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'totp', reason: 'wrong' })

  const spent = await answer(browser, page, { code: totpCode(secret, h.clock.now()) })
  t.equal(spent.status, 400, 'the step the enrolment confirmed is spent')
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'totp', reason: 'reused' })

  const malformed = await answer(browser, page, { code: '12 34' })
  t.equal(malformed.status, 400)
  t.match(malformed.html, /Enter the 6-digit code/)
  t.equal(h.logs.events('mfa.failed').length, 2, 'a code of the wrong shape is not counted')

  const nothing = await answer(browser, page, {})
  t.equal(nothing.status, 400)
  t.notOk([...browser.jar.cookies.keys()].includes('gh_session'))
})

t.test('the same code twice (within its window) is refused the second time, in another browser too', async (t) => {
  const h = await mfaApp(t)
  const secret = await enrolTotp(h, await signedIn(h))
  nextStep(h)
  const code = totpCode(secret, h.clock.now())
  const first = await passwordStep(h)
  t.equal((await answer(first.browser, first.page, { code })).status, 303)
  const second = await passwordStep(h)
  const again = await answer(second.browser, second.page, { code })
  t.equal(again.status, 400)
  t.match(again.html, /That code is not correct or has already been used\./)
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'totp', reason: 'reused' })
  h.clock.advance(20_000)
  t.equal((await answer(second.browser, second.page, { code })).status, 400, 'still refused within the window')
  t.notOk([...second.browser.jar.cookies.keys()].includes('gh_session'))
  nextStep(h)
  t.equal((await answer(second.browser, second.page, { code: totpCode(secret, h.clock.now()) })).status, 303, 'the next code works')
})

t.test('guessing is locked out per user; during the lockout even a correct code is refused; it ends', async (t) => {
  const h = await mfaApp(t, { LOGIN_MAX_ATTEMPTS: '3', LOGIN_WINDOW: '600', LOGIN_LOCKOUT: '120' })
  const secret = await enrolTotp(h, await signedIn(h))
  nextStep(h)
  const { browser, page } = await passwordStep(h, 'alice', '198.51.100.7')
  const right = (): string => totpCode(secret, h.clock.now())
  const wrong = (): string => String((Number(right()) + 500_000) % 1_000_000).padStart(6, '0')
  for (let i = 0; i < 3; i++) t.equal((await answer(browser, page, { code: wrong() })).status, 400, `wrong code ${i + 1}`)
  const locked = await answer(browser, page, { code: right() })
  t.equal(locked.status, 429, 'a correct code during the lockout')
  t.match(locked.html, /Too many attempts/)
  t.notOk([...browser.jar.cookies.keys()].includes('gh_session'))
  t.match(h.logs.events('mfa.locked').at(-1), { kind: 'totp', scope: 'user' })
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'totp', reason: 'locked' })
  // From another address, with a fresh password step: the user's lockout holds there too.
  const elsewhere = await passwordStep(h, 'alice', '203.0.113.50')
  t.equal(elsewhere.page.status, 200, 'the password step is not what is locked')
  t.equal((await answer(elsewhere.browser, elsewhere.page, { code: right() })).status, 429, 'a correct code from elsewhere, refused')
  t.equal((await h.deps.factors.list((await h.deps.users.findByUsername('alice'))!.id)).find((f) => f.kind === 'totp')!.lastUsedAt, undefined, 'no code was accepted')
  // A recovery code is a second-factor attempt too.
  h.clock.advance(121_000)
  nextStep(h)
  t.equal((await answer(elsewhere.browser, elsewhere.page, { code: right() })).status, 303, 'the lockout ended')
})

t.test('another user is not locked by alice\'s lockout; passwords are not locked by it', async (t) => {
  const h = await mfaApp(t, { LOGIN_MAX_ATTEMPTS: '2', LOGIN_LOCKOUT: '600' })
  const aliceSecret = await enrolTotp(h, await signedIn(h))
  const bobSecret = await enrolTotp(h, await signedIn(h, 'bob'))
  nextStep(h)
  const a = await passwordStep(h)
  for (let i = 0; i < 3; i++) await answer(a.browser, a.page, { code: '000000' === totpCode(aliceSecret, h.clock.now()) ? '111111' : '000000' })
  t.equal((await answer(a.browser, a.page, { code: totpCode(aliceSecret, h.clock.now()) })).status, 429)
  const b = await passwordStep(h, 'bob')
  t.equal((await answer(b.browser, b.page, { code: totpCode(bobSecret, h.clock.now()) })).status, 303, 'bob signs in')
  t.equal((await passwordStep(h)).page.status, 200, 'alice\'s password still reaches the second step')
})

t.test('a recovery code works once; twice fails; the page offers it only while codes remain', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  await enrolTotp(h, alice)
  const codes = await generateCodes(alice)
  t.equal(codes.length, 10)
  t.match((await alice.get('/account')).html, /10 of 10 left/)

  const first = await passwordStep(h)
  t.match(first.page.html, /<details><summary>Use a recovery code instead<\/summary>/, 'a second small form, no script')
  t.notMatch(first.page.html, /<script/i)
  const used = await answer(first.browser, first.page, { recovery_code: codes[3]!.toUpperCase() })
  t.equal(used.status, 303, 'a recovery code, typed in capitals')
  t.same((await h.deps.sessions.listByUser((await h.deps.users.findByUsername('alice'))!.id)).at(-1)!.amr, ['pwd', 'otp', 'mfa'])
  t.match(h.logs.events('login.succeeded').at(-1), { amr: ['pwd', 'otp', 'mfa'] })
  t.match((await alice.get('/account')).html, /9 of 10 left/)

  const second = await passwordStep(h)
  const twice = await answer(second.browser, second.page, { recovery_code: codes[3]! })
  t.equal(twice.status, 400)
  t.match(twice.html, /<details open>/, 'the recovery form open, with its error')
  t.match(twice.html, /That code is not correct or has already been used\./)
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'recovery', reason: 'wrong' })
  t.equal((await answer(second.browser, second.page, { recovery_code: 'not a code' })).status, 400)
  t.equal(h.logs.events('mfa.failed').length, 1, 'a recovery code of the wrong shape is not counted')
  t.equal((await answer(second.browser, second.page, { recovery_code: codes[4]!.replace('-', ' ') })).status, 303)
})

t.test('the step\'s form: CSRF token, another browser\'s step, expiry, a password change in between', async (t) => {
  const h = await mfaApp(t)
  const secret = await enrolTotp(h, await signedIn(h))
  nextStep(h)
  const { browser, page } = await passwordStep(h)
  const code = totpCode(secret, h.clock.now())
  const f = stepFields(page)
  t.equal((await browser.post('/login/second-factor', { ...f, code }, false)).status, 400, 'no cookie')
  t.equal((await browser.post('/login/second-factor', { ...f, csrf: `${f.csrf.slice(0, -2)}AA`, code })).status, 403, 'wrong token')
  t.equal((await browser.post('/login/second-factor', { ...f, csrf: '', code })).status, 403, 'no token')
  t.equal((await browser.post('/login/second-factor', { step: 'AAAAAAAAAAAAAAAA', csrf: f.csrf, code })).status, 400, 'unknown step')
  const other = await passwordStep(h, 'bob')
  const jar = new CookieJar()
  for (const [k, v] of browser.jar.cookies) if (!k.startsWith('gh_mfa_')) jar.cookies.set(k, v)
  for (const [k, v] of other.browser.jar.cookies) if (k.startsWith('gh_mfa_')) jar.cookies.set(k, v)
  const mixed = await h.app.inject({ method: 'POST', url: '/login/second-factor', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() }, payload: new URLSearchParams({ ...f, code }).toString() })
  t.equal(mixed.statusCode, 400, 'another browser\'s step cookie does not carry this form')
  t.equal(h.logs.events('mfa.failed').length, 0, 'refused forms check no code')
  t.notOk([...browser.jar.cookies.keys()].includes('gh_session'))

  // A password change between the steps voids the step.
  const alice = (await h.deps.users.findByUsername('alice'))!
  await h.deps.users.setPassword(alice.id, await hashPassword('alice-new-password'))
  const changed = await answer(browser, page, { code })
  t.equal(changed.status, 400)
  t.match(changed.html, /This sign-in has expired/)

  // Five minutes on, the step has expired.
  const fresh = await passwordStep(h, 'alice', '127.0.0.1', 'alice-new-password')
  h.clock.advance(5 * 60_000 + 1)
  const late = await answer(fresh.browser, fresh.page, { code: totpCode(secret, h.clock.now()) })
  t.equal(late.status, 400)
  t.match(late.html, /This sign-in has expired/)
  t.same(h.logs.lines.map((l) => JSON.parse(l) as { level: number }).filter((l) => l.level >= 50), [], 'refusals are not server errors')
})

t.test('a code of the wrong content type or a repeated field is refused as a bad form', async (t) => {
  const h = await mfaApp(t)
  await enrolTotp(h, await signedIn(h))
  const { browser, page } = await passwordStep(h)
  const res = await h.app.inject({ method: 'POST', url: '/login/second-factor', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: browser.jar.header() }, payload: `${new URLSearchParams(stepFields(page)).toString()}&code=1&code=2` })
  t.equal(res.statusCode, 400)
  const json = await h.app.inject({ method: 'POST', url: '/login/second-factor', headers: { 'content-type': 'application/json', cookie: browser.jar.header() }, payload: JSON.stringify({ ...stepFields(page), code: '123456' }) })
  t.ok([400, 415].includes(json.statusCode))
  t.match(json.headers['content-type'], /text\/html/)
})

t.test('secrets, codes and recovery codes never reach the logs', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  const secret = await enrolTotp(h, alice)
  const codes = await generateCodes(alice)
  nextStep(h)
  const code = totpCode(secret, h.clock.now())
  const a = await passwordStep(h)
  await answer(a.browser, a.page, { code })
  const b = await passwordStep(h)
  await answer(b.browser, b.page, { recovery_code: codes[0]! })
  await answer(b.browser, b.page, { code })
  const text = h.logs.text
  for (const s of [secret, code, ...codes, ...codes.map((c) => c.replace('-', ''))]) t.notOk(text.includes(s), 'not in the logs')
  const trail = JSON.stringify(await h.deps.audit.search({ limit: 100 }))
  for (const s of [secret, ...codes]) t.notOk(trail.includes(s), 'not in the audit trail')
})

t.test('a user without a TOTP or passkey signs in with the password alone, even holding recovery codes', async (t) => {
  const h = await mfaApp(t)
  const bob = await signedIn(h, 'bob')
  await generateCodes(bob)
  const b = new DeviceBrowser(h)
  const back = await b.signIn('/account', 'bob', 'bob-password')
  t.equal(back.status, 303)
  t.equal(back.location, `${h.issuer}/account`)
})

t.test('through /authorize: the second step ends at the client with a code that exchanges for tokens', async (t) => {
  const h = await mfaApp(t)
  const secret = await enrolTotp(h, await signedIn(h))
  nextStep(h)
  const browser = new DeviceBrowser(h)
  const url = authorizeUrl(h)
  const login = await browser.get(`${url.pathname}${url.search}`)
  const step = await browser.post('/login', { interaction: field(login.html, 'interaction'), csrf: field(login.html, 'csrf'), username: 'alice', password: 'alice-password' })
  t.equal(step.status, 200)
  t.match(step.headers.get('content-security-policy'), new RegExp(`form-action 'self' ${new URL(REDIRECT_URI).origin}`), 'the redirect to the client is allowed')
  t.match(step.html, new RegExp(`action="${h.issuer}/login/second-factor"`))
  const back = await answer(browser, step, { code: totpCode(secret, h.clock.now()) })
  t.equal(back.status, 303)
  const location = new URL(back.location!)
  t.equal(`${location.origin}${location.pathname}`, REDIRECT_URI)
  t.equal(location.searchParams.get('state'), 'state-1')
  const code = location.searchParams.get('code')!
  t.equal((await exchange(h, code)).statusCode, 200)
  t.match(back.headers.get('set-cookie'), /gh_login_[^=]+=;/, 'the pending login is cleared')
})

t.test('a TOTP secret that no COOKIE_SECRET opens: refused uncounted, logged, recovery codes offered', async (t) => {
  const h = await mfaApp(t)
  const alice = await signedIn(h)
  const secret = await enrolTotp(h, alice)
  const codes = await generateCodes(alice)
  const user = (await h.deps.users.findByUsername('alice'))!
  const totp = (await h.deps.factors.list(user.id)).find((f) => f.kind === 'totp')!
  await h.deps.factors.remove(user.id, totp.id)
  // As if sealed under a COOKIE_SECRET since dropped from the list.
  await h.deps.factors.add({ ...totp, sealedSecret: `v1.AAAAAAAA.${'A'.repeat(16)}.AAAA.${'A'.repeat(22)}` })
  nextStep(h)
  const { browser, page } = await passwordStep(h)
  const res = await answer(browser, page, { code: totpCode(secret, h.clock.now()) })
  t.equal(res.status, 400)
  t.match(res.html, /cannot be checked right now\. Use a recovery code instead\./)
  t.equal(h.logs.events('mfa.failed').length, 0, 'not counted as a guess')
  t.equal(h.logs.events('mfa.unreadable_secret').length, 1)
  t.equal((await answer(browser, res, { recovery_code: codes[0]! })).status, 303, 'the recovery code still works')
})
