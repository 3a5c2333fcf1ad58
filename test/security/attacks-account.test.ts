/**
 * Attack regressions against the account page (issue 16, DESIGN §10.5): a cross-site form post
 * (the browser sends the victim's cookies but the attacker cannot read the page's token), an
 * attacker replaying the token of their own account page against the victim's cookies, and a
 * signed-in user naming another user's session. The detailed rules are tested beside the code
 * (services/auth/test/account/; SECURITY.md maps each attack to its tests).
 */
import t from 'tap'
import { CookieJar } from '@gatehouse/test-harness'
import { DeviceBrowser, field } from '../../services/auth/test/device/device-harness.js'
import { postToken, startResourceApp } from '../../services/auth/test/oidc/resource-fixture.js'

const FORM = { 'content-type': 'application/x-www-form-urlencoded' } as const

t.test('cross-site posts to the account forms change nothing', async (t) => {
  const h = await startResourceApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const victim = new DeviceBrowser(h)
  await victim.signIn('/account')
  const attacker = new DeviceBrowser(h, '203.0.113.9')
  await attacker.signIn('/account', 'bob', 'bob-password')
  const attackerPage = await attacker.get('/account')
  const stolenForm = { form: field(attackerPage.html, 'form'), csrf: field(attackerPage.html, 'csrf') }
  // What a cross-site form carries: the victim's session cookie (a top-level POST keeps SameSite=Lax
  // cookies only for GET, but assume the worst), never a readable token; at best the attacker's own.
  const sessionOnly = new CookieJar()
  for (const [k, v] of victim.jar.cookies) if (k === 'gh_session') sessionOnly.cookies.set(k, v)
  for (const [path, fields] of [
    ['/account/password', { current_password: 'x', new_password: 'attacker-chosen', new_password_again: 'attacker-chosen' }],
    ['/account/sessions/end-all', {}],
  ] as const) {
    const guessed = await h.app.inject({ method: 'POST', url: path, headers: { ...FORM, cookie: sessionOnly.header() }, payload: new URLSearchParams({ form: 'AAAAAAAAAAAAAAAA', csrf: 'guess', ...fields }).toString() })
    t.equal(guessed.statusCode, 400, `${path}: no form cookie, refused`)
    const replayed = await h.app.inject({ method: 'POST', url: path, headers: { ...FORM, cookie: sessionOnly.header() }, payload: new URLSearchParams({ ...stolenForm, ...fields }).toString() })
    t.equal(replayed.statusCode, 400, `${path}: the attacker's own form id and token, refused`)
  }
  t.equal((await victim.get('/account')).status, 200, 'the victim is still signed in')
  t.match((await victim.get('/account')).html, /account-username">alice</)
  t.equal((await postToken(h, { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' })).statusCode, 200, 'the password is unchanged')
})

t.test('a signed-in user cannot sign out another user\'s session', async (t) => {
  const h = await startResourceApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const victim = new DeviceBrowser(h)
  await victim.signIn('/account')
  const victimSession = /name="session" value="([^"]*)"/.exec((await victim.get('/account')).html)![1]!
  const attacker = new DeviceBrowser(h, '203.0.113.9')
  await attacker.signIn('/account', 'bob', 'bob-password')
  const page = await attacker.get('/account')
  const res = await attacker.post('/account/sessions/end', { form: field(page.html, 'form'), csrf: field(page.html, 'csrf'), session: victimSession })
  t.equal(res.status, 400)
  t.equal((await victim.get('/account')).status, 200, 'the victim is still signed in')
  t.match((await victim.get('/account')).html, /account-username">alice</)
})
