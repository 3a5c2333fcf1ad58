/**
 * The passkey second step through the real routes (DESIGN §10.5): a user with a passkey signs in
 * to a client with the password, the second-step page offers the ceremony (only that user's
 * passkeys, bound to this step), `POST /login/second-factor/passkey` ends the sign-in with amr
 * `pwd hwk user mfa` and the ID token says so; another user's passkey, a ceremony of another
 * step and a replayed response are refused. And a client with `require_mfa`: a user without a
 * second factor gets no code, only a page pointing to the account page.
 */
import t, { type Test } from 'tap'
import type { User } from '../../src/directory/users.js'
import { enrolPasskey, registrationOptions, relyingParty } from '../../src/mfa/passkeys.js'
import { ACR_MFA, ACR_PHISHING_RESISTANT } from '../../src/mfa/assurance.js'
import { DeviceBrowser, field, type Page } from '../device/device-harness.js'
import { DASH_CLIENT, REDIRECT_URI, VERIFIER, authorizeUrl, claimsOf, encode, exchange, postToken, startResourceApp } from '../oidc/resource-fixture.js'
import { s256 } from '../../src/authorize/pkce.js'
import { basic } from '../helpers.js'
import type { OidcApp } from '../oidc/harness.js'
import { SoftwareAuthenticator } from './software-authenticator.js'
import { enrolTotp, signedIn, nextStep } from './mfa-harness.js'
import { totpCode } from '../../src/mfa/totp.js'

const ISSUER = 'http://localhost:4000'
const STRICT = { ...DASH_CLIENT, client_id: 'strict', client_name: 'Strict app', grant_types: ['authorization_code', 'refresh_token'], require_mfa: true }

async function app(t: Test): Promise<OidcApp> {
  const h = await startResourceApp({ env: { ISSUER, LOGIN_DELAY_MS: '0' }, clients: [STRICT] })
  t.teardown(h.close)
  return h
}

async function enrol(h: OidcApp, username: string, fill: number): Promise<SoftwareAuthenticator> {
  const rp = relyingParty(h.deps.config)!
  const user = (await h.deps.users.findByUsername(username)) as User
  const auth = new SoftwareAuthenticator(ISSUER, 'localhost')
  const options = JSON.parse(await registrationOptions(rp, user, [], new Uint8Array(32).fill(fill))) as { challenge: string; user: { id: string } }
  const r = await enrolPasskey(h.deps, rp, user, auth.register(options), { challenge: options.challenge, exp: h.deps.clock() + 60_000 }, 'test passkey')
  if (!r.ok) throw new Error(r.reason)
  return auth
}

/** The login form of an authorization request, answered with the password: the page that follows. */
async function password(h: OidcApp, url: URL, username = 'alice'): Promise<{ browser: DeviceBrowser; page: Page }> {
  const browser = new DeviceBrowser(h)
  const login = await browser.get(url.pathname + url.search)
  const page = await browser.post('/login', { interaction: field(login.html, 'interaction'), csrf: field(login.html, 'csrf'), username, password: `${username}-password` })
  return { browser, page }
}

const ceremonyOf = (page: Page) => ({
  step: field(page.html, 'step'),
  csrf: field(page.html, 'csrf'),
  ceremony: field(page.html, 'ceremony'),
  ceremony_csrf: field(page.html, 'ceremony_csrf'),
  options: JSON.parse(/data-options="([^"]*)"/.exec(page.html)![1]!.replace(/&quot;/g, '"')) as { challenge: string; allowCredentials: { id: string }[] },
})

t.test('password, then a passkey: a code whose ID token has amr pwd hwk user mfa; refusals show the step again', async (t) => {
  const h = await app(t)
  const alices = await enrol(h, 'alice', 1)
  const bobs = await enrol(h, 'bob', 2)

  const { browser, page } = await password(h, authorizeUrl(h, { nonce: 'n-1' }))
  t.equal(page.status, 200)
  t.match(page.html, /<section id="passkey-step"/)
  t.match(page.html, /action="\/login\/second-factor\/passkey"/)
  t.notMatch(page.html, /autocomplete="one-time-code"/, 'no TOTP, no code field')
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/, 'the ceremony\'s scripts are allowed on this page')
  const c = ceremonyOf(page)
  t.same(c.options.allowCredentials.map((x) => x.id), [alices.id], 'only alice\'s passkeys')

  const post = (fields: Record<string, string>) => browser.post('/login/second-factor/passkey', fields)
  const base = { step: c.step, csrf: c.csrf, ceremony: c.ceremony, ceremony_csrf: c.ceremony_csrf }

  const bob = await post({ ...base, credential: bobs.assert(c.options) })
  t.equal(bob.status, 400, 'bob\'s passkey for alice\'s sign-in')
  t.match(bob.html, /That passkey could not be used/)
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'passkey', step: 'second_step', reason: 'unknown' })
  t.notOk([...browser.jar.cookies.keys()].some((k) => k.endsWith('gh_session')), 'no session')

  // The refusal offered a new ceremony; the old one is no longer the page's.
  const fresh = ceremonyOf(bob)
  const done = await post({ step: fresh.step, csrf: fresh.csrf, ceremony: fresh.ceremony, ceremony_csrf: fresh.ceremony_csrf, credential: alices.assert(fresh.options) })
  t.equal(done.status, 303)
  const back = new URL(done.location!)
  t.equal(`${back.origin}${back.pathname}`, REDIRECT_URI)
  const tokens = await exchange(h, back.searchParams.get('code')!)
  t.equal(tokens.statusCode, 200)
  const id = claimsOf(tokens.json().id_token)
  t.same(id.amr, ['pwd', 'hwk', 'user', 'mfa'])
  t.equal(id.acr, ACR_PHISHING_RESISTANT)
  t.match(h.logs.events('login.succeeded').at(-1), { amr: ['pwd', 'hwk', 'user', 'mfa'] })

  const replay = await post({ step: fresh.step, csrf: fresh.csrf, ceremony: fresh.ceremony, ceremony_csrf: fresh.ceremony_csrf, credential: alices.assert(fresh.options) })
  t.equal(replay.status, 400, 'the step is over: nothing more is accepted on it')

  // The step's form without its CSRF token, or with another step's ceremony.
  const second = await password(h, authorizeUrl(h))
  const s = ceremonyOf(second.page)
  t.equal((await second.browser.post('/login/second-factor/passkey', { step: s.step, csrf: 'x'.repeat(43), ceremony: s.ceremony, ceremony_csrf: s.ceremony_csrf, credential: alices.assert(s.options) })).status, 403)
  const other = await second.browser.post('/login/second-factor/passkey', { step: s.step, csrf: s.csrf, ceremony: c.ceremony, ceremony_csrf: c.ceremony_csrf, credential: alices.assert(c.options) })
  t.equal(other.status, 400, 'a ceremony shown for another step')
  t.match(h.logs.events('mfa.failed').at(-1), { kind: 'passkey', reason: 'wrong' })
})

t.test('with an IP-address issuer the second step offers no passkey, and the code field still works', async (t) => {
  const h = await startResourceApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const secret = await enrolTotp(h, await signedIn(h))
  const user = (await h.deps.users.findByUsername('alice'))!
  await h.deps.factors.add({ id: 'pk-by-hand', userId: user.id, kind: 'passkey', label: 'old', createdAt: 0, credentialId: 'Y3JlZA', publicKey: 'AA', counter: 0, transports: [] })
  const { browser, page } = await password(h, authorizeUrl(h))
  t.notMatch(page.html, /passkey-step/)
  t.notMatch(page.headers.get('content-security-policy'), /script-src/)
  nextStep(h)
  t.equal((await browser.post('/login/second-factor', { step: field(page.html, 'step'), csrf: field(page.html, 'csrf'), code: totpCode(secret, h.clock.now()) })).status, 303)
})

t.test('require_mfa: no code for a user without a second factor; with one, the second step and an mfa sign-in', async (t) => {
  const h = await app(t)
  const url = (client: string) => new URL(`/authorize?${encode({ response_type: 'code', client_id: client, redirect_uri: REDIRECT_URI, scope: 'openid documents:read', state: 's', code_challenge: s256(VERIFIER), code_challenge_method: 'S256' })}`, ISSUER)

  const { browser, page } = await password(h, url('strict'), 'bob')
  t.equal(page.status, 403)
  t.match(page.html, /Strict app requires a second factor, and your account has none yet\./)
  t.match(page.html, /href="http:\/\/localhost:4000\/account"/)
  t.equal(page.location, null, 'no redirect: no code')
  t.notOk([...browser.jar.cookies.keys()].some((k) => k.endsWith('gh_session')), 'no session either')
  t.match(h.logs.events('login.second_factor_missing').at(-1) ?? {}, {})

  // The same user at a client without require_mfa signs in with the password alone.
  const plain = await password(h, authorizeUrl(h), 'bob')
  t.equal(plain.page.status, 303)

  // With an authenticator app: the second step, then a code for the strict client with acr mfa.
  const bobBrowser = await signedIn(h, 'bob')
  const secret = await enrolTotp(h, bobBrowser)
  const strict = await password(h, url('strict'), 'bob')
  t.equal(strict.page.status, 200)
  nextStep(h)
  const done = await strict.browser.post('/login/second-factor', { step: field(strict.page.html, 'step'), csrf: field(strict.page.html, 'csrf'), code: totpCode(secret, h.clock.now()) })
  t.equal(done.status, 303)
  const code = new URL(done.location!).searchParams.get('code')!
  const tokens = await postToken(h, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER }, basic('strict', 'dash-secret'))
  t.equal(tokens.statusCode, 200)
  t.equal(claimsOf(tokens.json().id_token).acr, ACR_MFA)
  t.equal(claimsOf(tokens.json().access_token).acr, ACR_MFA, 'a require_mfa client\'s access tokens carry acr')
})
