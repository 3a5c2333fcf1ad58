/**
 * Attack regressions against the second factors (issue 16, DESIGN §10.5): a stolen password
 * alone never yields a session; guessing TOTP codes from many places is locked out per user and
 * a lockout refuses even the right code; a captured code cannot be replayed; a forged or swapped
 * second-step cookie gets nowhere; cross-site posts and an old session cannot enrol or remove
 * factors. The detailed rules are tested beside the code (services/auth/test/mfa/,
 * services/auth/test/account/second-factors.test.ts; SECURITY.md maps each attack to its tests).
 */
import t from 'tap'
import { CookieJar } from '@gatehouse/test-harness'
import { totpCode } from '../../services/auth/src/mfa/totp.js'
import { answer, enrolTotp, formFields, mfaApp, nextStep, passwordStep, signedIn, stepFields } from '../../services/auth/test/mfa/mfa-harness.js'
import { CLI, authorizeQuery, FORM, postForm } from './auth-fixture.js'

t.test('a stolen password alone: no session, no code for the client', async (t) => {
  const h = await mfaApp(t)
  await enrolTotp(h, await signedIn(h))
  const { browser, page } = await passwordStep(h, 'alice', '203.0.113.9')
  t.equal(page.status, 200)
  t.notOk(browser.jar.cookies.has('gh_session'))
  // Back to /authorize with what the browser holds: the login form again, never a code.
  const again = await browser.get(`/authorize?${authorizeQuery()}`)
  t.equal(again.status, 200)
  t.match(again.html, /name="password"/)
  t.equal(again.location, null)
  t.equal((await browser.get('/account')).html.includes('account-username'), false)
  // Nor is the password grant a way around the second step.
  const grant = await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' }, CLI)
  t.equal(grant.statusCode, 400)
  t.match(grant.json(), { error: 'invalid_grant' })
  t.equal((await postForm(h, '/token', { grant_type: 'password', username: 'bob', password: 'bob-password', scope: 'openid' }, CLI)).statusCode, 200, 'a user without a second factor still can')
})

t.test('guessing codes from many addresses is locked out per user; then even the right code is refused', async (t) => {
  const h = await mfaApp(t, { LOGIN_MAX_ATTEMPTS: '5', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '1000', LOGIN_LOCKOUT: '900' })
  const secret = await enrolTotp(h, await signedIn(h))
  nextStep(h)
  const right = totpCode(secret, h.clock.now())
  let guessed = 0
  let locked = 0
  for (let i = 0; i < 12; i++) {
    const { browser, page } = await passwordStep(h, 'alice', `198.51.100.${10 + i}`)
    const guess = String(100_000 + i * 7919).slice(0, 6)
    if (guess === right) continue
    const res = await answer(browser, page, { code: guess })
    if (res.status === 429) locked++
    else guessed++
  }
  t.equal(guessed, 5, 'five guesses counted, whatever the address')
  t.ok(locked >= 6, 'the rest refused unchecked')
  const { browser, page } = await passwordStep(h, 'alice', '192.0.2.200')
  t.equal((await answer(browser, page, { code: right })).status, 429, 'the right code, refused during the lockout')
  t.notOk(browser.jar.cookies.has('gh_session'))
  t.ok(h.logs.events('mfa.locked').length >= 1)
})

t.test('a code captured after use (relayed by a phishing page) cannot be replayed', async (t) => {
  const h = await mfaApp(t)
  const secret = await enrolTotp(h, await signedIn(h))
  nextStep(h)
  const code = totpCode(secret, h.clock.now())
  const victim = await passwordStep(h)
  t.equal((await answer(victim.browser, victim.page, { code })).status, 303)
  const attacker = await passwordStep(h, 'alice', '203.0.113.9')
  t.equal((await answer(attacker.browser, attacker.page, { code })).status, 400)
  t.notOk(attacker.browser.jar.cookies.has('gh_session'))
  t.match(h.logs.events('mfa.failed').at(-1), { reason: 'reused' })
})

t.test('a forged second-step cookie, or the attacker\'s own step used for another user, gets nowhere', async (t) => {
  const h = await mfaApp(t)
  const aliceSecret = await enrolTotp(h, await signedIn(h))
  const bobSecret = await enrolTotp(h, await signedIn(h, 'bob'))
  nextStep(h)
  // The attacker knows bob's password and code (their own account) and passes bob's password step.
  const { browser, page } = await passwordStep(h, 'bob', '203.0.113.9')
  const name = [...browser.jar.cookies.keys()].find((k) => k.startsWith('gh_mfa_'))!
  const signed = browser.jar.cookies.get(name)!
  const value = decodeURIComponent(signed)
  const dot = value.lastIndexOf('.')
  const content = JSON.parse(Buffer.from(value.slice(0, dot), 'base64url').toString()) as Record<string, unknown>
  const alice = (await h.deps.users.findByUsername('alice'))!
  const forged = Buffer.from(JSON.stringify({ ...content, userId: alice.id })).toString('base64url') + value.slice(dot)
  const jar = new CookieJar()
  for (const [k, v] of browser.jar.cookies) jar.cookies.set(k, k === name ? encodeURIComponent(forged) : v)
  const res = await h.app.inject({ method: 'POST', url: '/login/second-factor', headers: { ...FORM, cookie: jar.header() }, payload: new URLSearchParams({ ...stepFields(page), code: totpCode(aliceSecret, h.clock.now()) }).toString() })
  t.equal(res.statusCode, 400, 'the signature no longer matches')
  t.notOk(res.headers['set-cookie']?.toString().includes('gh_session='))
  // Bob's genuine step with alice's code: checked against bob's app, refused.
  t.equal((await answer(browser, page, { code: totpCode(aliceSecret, h.clock.now()) === totpCode(bobSecret, h.clock.now()) ? '000000' : totpCode(aliceSecret, h.clock.now()) })).status, 400)
  t.equal((await answer(browser, page, { code: totpCode(bobSecret, h.clock.now()) })).status, 303, 'bob\'s own code signs bob in')
  t.equal((await h.deps.sessions.listByUser(alice.id)).length, 1, 'alice has only her own session')
})

t.test('cross-site posts and an old session cannot enrol the attacker\'s app or remove the victim\'s', async (t) => {
  const h = await mfaApp(t)
  const victim = await signedIn(h)
  await enrolTotp(h, victim)
  const attacker = await signedIn(h, 'bob', '203.0.113.9')
  const attackerPage = await attacker.get('/account')
  const victimFactor = (await h.deps.factors.list((await h.deps.users.findByUsername('alice'))!.id))[0]!
  const sessionOnly = new CookieJar()
  for (const [k, v] of victim.jar.cookies) if (k === 'gh_session') sessionOnly.cookies.set(k, v)
  for (const [path, fields] of [
    ['/account/totp/start', {}],
    ['/account/factors/remove', { factor: victimFactor.id }],
    ['/account/recovery-codes', {}],
  ] as const) {
    const guessed = await h.app.inject({ method: 'POST', url: path, headers: { ...FORM, cookie: sessionOnly.header() }, payload: new URLSearchParams({ form: 'AAAAAAAAAAAAAAAA', csrf: 'guess', ...fields }).toString() })
    t.equal(guessed.statusCode, 400, `${path}: no form cookie, refused`)
    const replayed = await h.app.inject({ method: 'POST', url: path, headers: { ...FORM, cookie: sessionOnly.header() }, payload: new URLSearchParams({ ...formFields(attackerPage), ...fields }).toString() })
    t.equal(replayed.statusCode, 400, `${path}: the attacker's own form id and token, refused`)
  }
  // The attacker's own, genuine form cannot remove the victim's factor either.
  t.equal((await attacker.post('/account/factors/remove', { ...formFields(attackerPage), factor: victimFactor.id })).status, 400)
  // A browser left signed in: hours later, whoever sits at it cannot change the factors.
  h.clock.advance(2 * 3600_000)
  const page = await victim.get('/account')
  const removed = await victim.post('/account/factors/remove', { ...formFields(page), factor: victimFactor.id })
  t.match(removed.html, /<title>Sign in – Gatehouse<\/title>/)
  t.equal((await h.deps.factors.list(victimFactor.userId)).length, 1, 'the victim keeps the app')
  t.equal(h.logs.events('mfa.removed').length, 0)
})

t.test('absurd input on the second step: a page, never a 500', async (t) => {
  const h = await mfaApp(t)
  await enrolTotp(h, await signedIn(h))
  const { browser, page } = await passwordStep(h)
  for (const code of ['9'.repeat(40), '<script>', '１２３４５６', '\u0000\u0000\u0000\u0000\u0000\u0000', '123456'.padEnd(30, ' ')]) {
    const res = await browser.post('/login/second-factor', { ...stepFields(page), code })
    t.ok([400, 429].includes(res.status), JSON.stringify(code.slice(0, 10)))
    t.match(res.headers.get('content-type'), /text\/html/)
    t.notMatch(res.html, /<script>/)
  }
  t.same(h.logs.lines.map((l) => JSON.parse(l) as { level: number }).filter((l) => l.level >= 50), [])
})
