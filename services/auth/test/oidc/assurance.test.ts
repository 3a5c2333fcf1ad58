/**
 * Assurance at /authorize and in the tokens (DESIGN §10.5; OIDC Core §2, §3.1.2.1, §12.2; RFC 8176;
 * RFC 9068 §2.2.1), through app.inject: which login sessions may answer at once (SSO) and which
 * must sign in again (max_age, prompt=login, require_mfa, acr_values), the errors of prompt=none,
 * and the amr/acr/auth_time of the ID tokens (code exchange and refresh) and access tokens.
 * Sessions with a second factor are started through deps.sessions.start, as the second step will.
 */
import t, { type Test } from 'tap'
import { sign } from '@fastify/cookie'
import { decodeJwt } from 'jose'
import type { LightMyRequestResponse } from 'fastify'
import { s256 } from '../../src/authorize/pkce.js'
import { ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT, ACR_VALUES, passkeyAmr } from '../../src/mfa/assurance.js'
import { ManualClock } from '@gatehouse/test-harness'
import { startOidcApp, type OidcApp } from './harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
const MFA_CLIENT = {
  client_id: 'mfa-web',
  client_name: 'MFA web app',
  token_endpoint_auth_method: 'client_secret_basic',
  client_secret: 'mfa-web-secret',
  grant_types: ['authorization_code', 'refresh_token'],
  scope: 'openid profile',
  audience: 'api://resource',
  redirect_uris: [REDIRECT_URI],
  require_mfa: true,
}
const SECRETS: Record<string, string> = { web: 'web-secret', 'mfa-web': 'mfa-web-secret' }
const TOTP_AMR = ['pwd', 'otp', 'mfa']
const PASSKEY_AMR = passkeyAmr({ backedUp: false, withPassword: false })

async function app(t: Test): Promise<OidcApp> {
  // A clock that moves only when told: ages and iat are asserted to the second.
  const h = await startOidcApp({ clients: [MFA_CLIENT], clock: new ManualClock() })
  t.teardown(h.close)
  return h
}

/** A login session of alice with this amr, authenticated `ageSeconds` ago; its cookie. */
async function session(h: OidcApp, amr: string[], ageSeconds = 0): Promise<Record<string, string>> {
  const alice = await h.deps.users.findByUsername('alice')
  const { token } = await h.deps.sessions.start({ userId: alice!.id, authTime: h.clock.seconds() - ageSeconds, amr })
  return { gh_session: sign(token, h.config.cookieSecret) }
}

async function authorize(h: OidcApp, extra: Record<string, string> = {}, cookies?: Record<string, string>): Promise<LightMyRequestResponse> {
  const params = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: REDIRECT_URI, scope: 'openid profile', state: 'st-1', nonce: 'n-1', code_challenge: s256(VERIFIER), code_challenge_method: 'S256', ...extra,
  })
  return await h.app.inject({ method: 'GET', url: `/authorize?${params.toString()}`, ...(cookies ? { cookies } : {}) })
}

/** What the authorization answer was: a code, an error (redirected), or the login form. */
function outcome(res: LightMyRequestResponse): { code?: string; error?: string; state?: string; form?: true } {
  if (res.statusCode === 200 && /name="password"/.test(res.body)) return { form: true }
  if (res.statusCode !== 302) return {}
  const url = new URL(String(res.headers.location))
  const code = url.searchParams.get('code')
  const error = url.searchParams.get('error')
  return { ...(code ? { code } : {}), ...(error ? { error } : {}), ...(url.searchParams.get('state') ? { state: url.searchParams.get('state')! } : {}) }
}

async function token(h: OidcApp, clientId: string, form: Record<string, string>) {
  const res = await h.app.inject({
    method: 'POST',
    url: '/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${SECRETS[clientId] ?? 'cli-secret'}`).toString('base64')}` },
    payload: new URLSearchParams(form).toString(),
  })
  return { status: res.statusCode, body: res.json() as { access_token: string; refresh_token?: string; id_token?: string; error?: string } }
}

async function exchange(h: OidcApp, clientId: string, code: string) {
  const res = await token(h, clientId, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER })
  if (res.status !== 200) throw new Error(`code exchange: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

t.test('require_mfa: a password-only session does not answer; the form asks again (step-up); prompt=none says login_required', async (t) => {
  const h = await app(t)
  const pwd = await session(h, ['pwd'])
  t.same(outcome(await authorize(h, { client_id: 'mfa-web' }, pwd)), { form: true }, 'pwd-only session: the login form (step-up), not a code')
  t.same(outcome(await authorize(h, { client_id: 'mfa-web', prompt: 'none' }, pwd)), { error: 'login_required', state: 'st-1' }, 'prompt=none: login_required, never a page')
  t.same(outcome(await authorize(h, { client_id: 'mfa-web', prompt: 'none' })), { error: 'login_required', state: 'st-1' }, 'no session at all: login_required too')
  t.ok(outcome(await authorize(h, { client_id: 'web' }, pwd)).code, 'the same session still answers a client without require_mfa')
  t.ok(h.logs.events('authorize.reauthenticate').some((e) => e.reason === 'acr' && e.client_id === 'mfa-web'), 'the reason is logged')

  const totp = await session(h, TOTP_AMR)
  const answered = outcome(await authorize(h, { client_id: 'mfa-web' }, totp))
  t.ok(answered.code, 'a session with a second factor answers at once')
  const tokens = await exchange(h, 'mfa-web', answered.code!)
  const id = decodeJwt(tokens.id_token!)
  t.same(id.amr, TOTP_AMR, 'the ID token says how the user authenticated (RFC 8176)')
  t.equal(id.acr, ACR_MFA)
  t.equal(id.auth_time, h.clock.seconds())
  t.equal(decodeJwt(tokens.access_token).acr, ACR_MFA, 'require_mfa: the access token carries acr (RFC 9068 §2.2.1)')
  t.equal(decodeJwt(tokens.access_token).auth_time, h.clock.seconds())

  t.ok(outcome(await authorize(h, { client_id: 'mfa-web' }, await session(h, PASSKEY_AMR))).code, 'a passkey session meets MFA too')
})

t.test('acr_values: the most preferred supported value must be met by the session, else the form; unknown values are ignored', async (t) => {
  const h = await app(t)
  const pwd = await session(h, ['pwd'])
  t.same(outcome(await authorize(h, { acr_values: ACR_MFA }, pwd)), { form: true }, 'MFA asked, password session: step-up')
  t.same(outcome(await authorize(h, { acr_values: `${ACR_MFA} ${ACR_PASSWORD}` }, pwd)), { form: true }, 'order of preference: the first counts')
  t.ok(outcome(await authorize(h, { acr_values: `${ACR_PASSWORD} ${ACR_MFA}` }, pwd)).code, 'password preferred: the session answers')
  t.ok(outcome(await authorize(h, { acr_values: 'urn:example:unknown 0' }, pwd)).code, 'only unknown values: as if none was asked')
  t.same(outcome(await authorize(h, { acr_values: ACR_MFA, prompt: 'none' }, pwd)), { error: 'login_required', state: 'st-1' })
  const repeated = await h.app.inject({ method: 'GET', url: `/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: REDIRECT_URI, scope: 'openid', state: 'st-1', code_challenge: s256(VERIFIER), code_challenge_method: 'S256' }).toString()}&acr_values=a&acr_values=b`, cookies: pwd })
  t.same(outcome(repeated), { error: 'invalid_request', state: 'st-1' }, 'a repeated acr_values parameter is invalid_request')

  const totp = await session(h, TOTP_AMR)
  t.ok(outcome(await authorize(h, { acr_values: ACR_MFA }, totp)).code, 'MFA asked, MFA session: SSO')
  t.same(outcome(await authorize(h, { acr_values: ACR_PHISHING_RESISTANT }, totp)), { form: true }, 'phishing-resistant asked: a TOTP session steps up')
  const passkey = await session(h, PASSKEY_AMR)
  const answered = outcome(await authorize(h, { acr_values: ACR_PHISHING_RESISTANT }, passkey))
  t.ok(answered.code, 'a passkey session answers')
  const tokens = await exchange(h, 'web', answered.code!)
  t.equal(decodeJwt(tokens.id_token!).acr, ACR_PHISHING_RESISTANT)
  t.same(decodeJwt(tokens.id_token!).amr, PASSKEY_AMR)
  t.equal(decodeJwt(tokens.access_token).acr, ACR_PHISHING_RESISTANT, 'acr asked: the access token carries it')

  const unasked = await exchange(h, 'web', outcome(await authorize(h, {}, pwd)).code!)
  t.equal(decodeJwt(unasked.id_token!).acr, ACR_PASSWORD, 'the ID token always says acr and amr')
  t.same(decodeJwt(unasked.id_token!).amr, ['pwd'])
  t.notOk('acr' in decodeJwt(unasked.access_token), 'nothing asked: no acr in the access token')
  const ignored = await exchange(h, 'web', outcome(await authorize(h, { acr_values: 'urn:example:unknown' }, pwd)).code!)
  t.notOk('acr' in decodeJwt(ignored.access_token), 'only unknown values asked: as if none')
})

t.test('acr_values in a pushed request (PAR, RFC 9126) count as in a plain one', async (t) => {
  const h = await app(t)
  const push = async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/par',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('web:web-secret').toString('base64')}` },
      payload: new URLSearchParams({ client_id: 'web', response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid', state: 'st-1', code_challenge: s256(VERIFIER), code_challenge_method: 'S256', acr_values: `urn:example:unknown ${ACR_MFA}` }).toString(),
    })
    t.equal(res.statusCode, 201, res.body)
    return (res.json() as { request_uri: string }).request_uri
  }
  const pushed = async (cookies: Record<string, string>) => await h.app.inject({ method: 'GET', url: `/authorize?${new URLSearchParams({ client_id: 'web', request_uri: await push() }).toString()}`, cookies })
  t.same(outcome(await pushed(await session(h, ['pwd']))), { form: true }, 'a password session steps up')
  const answered = outcome(await pushed(await session(h, TOTP_AMR)))
  t.ok(answered.code, 'an MFA session answers')
  t.equal(decodeJwt((await exchange(h, 'web', answered.code!)).access_token).acr, ACR_MFA, 'acr asked through PAR: in the access token')
})

t.test('max_age and prompt=login decide whether a live session may answer', async (t) => {
  const h = await app(t)
  const fresh = await session(h, ['pwd'], 30)
  t.ok(outcome(await authorize(h, { max_age: '60' }, fresh)).code, 'authenticated 30 s ago, max_age=60: SSO')
  t.ok(outcome(await authorize(h, { max_age: '30' }, fresh)).code, 'exactly max_age old: still fresh')
  t.same(outcome(await authorize(h, { max_age: '29' }, fresh)), { form: true }, 'older than max_age: the form')
  t.same(outcome(await authorize(h, { max_age: '0' }, await session(h, ['pwd']))), { form: true }, 'max_age=0: always the form, even for a session of this second')
  t.same(outcome(await authorize(h, { max_age: '29', prompt: 'none' }, fresh)), { error: 'login_required', state: 'st-1' }, 'prompt=none with a session too old: login_required')
  t.same(outcome(await authorize(h, { prompt: 'login' }, fresh)), { form: true }, 'prompt=login: the form, even with a live session')
  t.same(outcome(await authorize(h, { prompt: 'login consent' }, await session(h, TOTP_AMR))), { form: true }, 'prompt=login with other values, a strong session: the form')
  h.clock.advanceSeconds(31)
  t.same(outcome(await authorize(h, { max_age: '60' }, fresh)), { form: true }, 'the clock moved past max_age')
  t.ok(outcome(await authorize(h, {}, fresh)).code, 'without max_age the session still answers')
  t.ok(h.logs.events('authorize.reauthenticate').some((e) => e.reason === 'max_age') && h.logs.events('authorize.reauthenticate').some((e) => e.reason === 'prompt_login'))
})

t.test('require_mfa set after a family began: a family from a password-only sign-in (or one from before amr) refreshes no more, and is revoked', async (t) => {
  const h = await app(t)
  const alice = (await h.deps.users.findByUsername('alice'))!
  for (const amr of [['pwd'], undefined]) {
    const { family, refreshToken } = await h.deps.families.create({ userId: alice.id, clientId: 'mfa-web', scope: 'openid profile', authTime: h.clock.seconds(), ...(amr === undefined ? {} : { amr }) })
    const res = await token(h, 'mfa-web', { grant_type: 'refresh_token', refresh_token: refreshToken })
    t.equal(res.status, 400)
    t.equal(res.body.error, 'invalid_grant')
    t.equal((await h.deps.families.get(family.id))?.revoked ?? true, true, 'the family is revoked')
  }
  const { refreshToken } = await h.deps.families.create({ userId: alice.id, clientId: 'mfa-web', scope: 'openid profile', authTime: h.clock.seconds(), amr: TOTP_AMR })
  t.equal((await token(h, 'mfa-web', { grant_type: 'refresh_token', refresh_token: refreshToken })).status, 200, 'a family from a second-factor sign-in refreshes')
})

t.test('a refresh issues an ID token about the original authentication (OIDC Core §12.2), and keeps acr in the access token', async (t) => {
  const h = await app(t)
  const cookies = await session(h, TOTP_AMR, 100)
  const first = await exchange(h, 'mfa-web', outcome(await authorize(h, { client_id: 'mfa-web' }, cookies)).code!)
  const original = decodeJwt(first.id_token!)
  t.equal(original.nonce, 'n-1')
  h.clock.advanceSeconds(300)
  const refreshed = await token(h, 'mfa-web', { grant_type: 'refresh_token', refresh_token: first.refresh_token! })
  t.equal(refreshed.status, 200)
  const id = decodeJwt(refreshed.body.id_token!)
  t.equal(id.auth_time, original.auth_time, 'auth_time is the original authentication, not the refresh')
  t.same(id.amr, TOTP_AMR)
  t.equal(id.acr, ACR_MFA)
  t.equal(id.sub, original.sub)
  t.equal(id.aud, 'mfa-web')
  t.equal(id.sid, original.sid, 'the same login session')
  t.equal(id.iat, h.clock.seconds(), 'iat is the new issue time')
  t.notOk('nonce' in id, 'no nonce on refresh (§12.2: SHOULD NOT)')
  t.ok(id.at_hash, 'at_hash of the new access token')
  const at = decodeJwt(refreshed.body.access_token)
  t.equal(at.acr, ACR_MFA, 'the access token keeps acr')
  t.equal(at.auth_time, original.auth_time)

  const narrowed = await token(h, 'mfa-web', { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token!, scope: 'profile' })
  t.equal(narrowed.status, 200)
  t.notOk(narrowed.body.id_token, 'a refresh narrowed without openid gets no ID token')

  // A client that asked for nothing: ID tokens still say amr/acr; access tokens do not.
  const plain = await exchange(h, 'web', outcome(await authorize(h, {}, await session(h, ['pwd']))).code!)
  const again = await token(h, 'web', { grant_type: 'refresh_token', refresh_token: plain.refresh_token! })
  t.same(decodeJwt(again.body.id_token!).amr, ['pwd'])
  t.equal(decodeJwt(again.body.id_token!).acr, ACR_PASSWORD)
  t.notOk('acr' in decodeJwt(again.body.access_token))
})

t.test('require_mfa backstop: a code from a sign-in without a second factor never yields tokens for the client', async (t) => {
  const h = await app(t)
  const alice = await h.deps.users.findByUsername('alice')
  const { session: s } = await h.deps.sessions.start({ userId: alice!.id, authTime: h.clock.seconds(), amr: ['pwd'] })
  const grant = { clientId: 'mfa-web', redirectUri: REDIRECT_URI, codeChallenge: s256(VERIFIER), scope: 'openid', userId: alice!.id, sessionId: s.id, authTime: s.authTime }
  for (const [name, amr] of [['pwd', ['pwd']], ['a code from before amr was recorded', undefined]] as const) {
    const code = await h.deps.codes.issue({ ...grant, ...(amr === undefined ? {} : { amr: [...amr] }) })
    const res = await token(h, 'mfa-web', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER })
    t.equal(res.status, 400, name)
    t.equal(res.body.error, 'invalid_grant', name)
  }
  const ok = await token(h, 'mfa-web', { grant_type: 'authorization_code', code: await h.deps.codes.issue({ ...grant, amr: TOTP_AMR }), redirect_uri: REDIRECT_URI, code_verifier: VERIFIER })
  t.equal(ok.status, 200, 'with a second factor it does')
})

t.test('introspection says acr and auth_time (RFC 9470 §6.2)', async (t) => {
  const h = await app(t)
  const tokens = await exchange(h, 'web', outcome(await authorize(h, { acr_values: ACR_MFA }, await session(h, TOTP_AMR, 5))).code!)
  const info = await h.app.inject({
    method: 'POST',
    url: '/introspect',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('web:web-secret').toString('base64')}` },
    payload: new URLSearchParams({ token: tokens.access_token }).toString(),
  })
  t.match(info.json(), { active: true, acr: ACR_MFA, auth_time: h.clock.seconds() - 5 })
})

t.test('the password grant: amr pwd and acr password in its ID token', async (t) => {
  const h = await app(t)
  const res = await token(h, 'cli', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid profile' })
  t.equal(res.status, 200, JSON.stringify(res.body))
  const id = decodeJwt(res.body.id_token!)
  t.same(id.amr, ['pwd'])
  t.equal(id.acr, ACR_PASSWORD)
  t.type(id.auth_time, 'number')
  t.notOk('acr' in decodeJwt(res.body.access_token), 'no acr asked')
})

t.test('discovery announces the acr values, amr and acr claims; the claims parameter stays unsupported', async (t) => {
  const h = await app(t)
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json() as Record<string, unknown>
  t.same(doc.acr_values_supported, [...ACR_VALUES])
  t.ok((doc.claims_supported as string[]).includes('amr') && (doc.claims_supported as string[]).includes('acr'))
  t.equal(doc.claims_parameter_supported, false)
})
