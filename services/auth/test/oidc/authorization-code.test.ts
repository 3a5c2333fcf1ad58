/**
 * The authorization_code grant at /token (RFC 6749 §4.1.3, RFC 7636 §4.6): bound to client,
 * redirect URI and PKCE verifier; single use, and a second use revokes what the first issued;
 * short-lived.
 */
import t from 'tap'
import { endSession } from '../../src/signin/browser.js'
import { s256 } from '../../src/authorize/pkce.js'
import { basic, form } from '../helpers.js'
import { parseLoginForm, parseLogoutForm, startOidcApp, type OidcApp } from './harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
const WEB = basic('web', 'web-secret')

/** Signs alice in through the form and returns a fresh code (and the session cookie). */
async function getCode(h: OidcApp, extra: Record<string, string> = {}): Promise<{ code: string; cookies: Record<string, string> }> {
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: REDIRECT_URI, scope: 'openid profile documents:read',
    code_challenge: s256(VERIFIER), code_challenge_method: 'S256', nonce: 'nonce-1', ...extra,
  })
  const page = await h.app.inject({ method: 'GET', url: `/authorize?${q}` })
  const cookies = Object.fromEntries(page.cookies.map((c) => [c.name, c.value]))
  const res = await h.app.inject({
    method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ ...parseLoginForm(page.body), username: 'alice', password: 'alice-password' }), cookies,
  })
  const code = new URL(res.headers.location as string).searchParams.get('code')
  if (!code) throw new Error(`no code: ${res.statusCode} ${res.body}`)
  return { code, cookies: Object.fromEntries(res.cookies.map((c) => [c.name, c.value])) }
}

async function exchange(h: OidcApp, code: string, extra: Record<string, string> = {}, auth: string | null = WEB) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (auth) headers.authorization = auth
  return await h.app.inject({
    method: 'POST', url: '/token', headers,
    payload: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER, ...extra }),
  })
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

t.test('a code exchanges once for tokens with an ID token', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const { code } = await getCode(h)
  const res = await exchange(h, code)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'id_token', 'refresh_token', 'scope', 'token_type'])
  t.equal(body.scope, 'openid profile documents:read')
  const id = claimsOf(body.id_token)
  t.match(id, { iss: h.issuer, aud: 'web', nonce: 'nonce-1' })
  t.equal((id.exp as number) - (id.iat as number), 900)
  const at = claimsOf(body.access_token)
  t.match(at, { client_id: 'web', aud: 'api://resource', roles: ['admin'], scope: body.scope })
  t.equal(at.auth_time, id.auth_time)
  t.equal(h.logs.events('token.issued')[0]?.grant_type, 'authorization_code')
})

t.test('a second use of a code is refused and revokes the family the first use started', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const { code } = await getCode(h)
  const first = (await exchange(h, code)).json()
  const family = claimsOf(first.access_token).sid as string
  const second = await exchange(h, code)
  t.equal(second.statusCode, 400)
  t.equal(second.json().error, 'invalid_grant')
  t.equal((await h.deps.families.get(family))?.revoked, true, 'family revoked')
  const refresh = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: WEB }, payload: form({ grant_type: 'refresh_token', refresh_token: first.refresh_token }) })
  t.equal(refresh.json().error, 'invalid_grant', 'its refresh token is dead')
  t.ok(h.published().some((p) => p.sid === family), 'announced to resource services')
  t.match(h.logs.events('authorization_code.reused')[0], { client_id: 'web', family_id: family })
  t.match(h.logs.events('family.revoked')[0], { family_id: family, reason: 'code_replay' })
})

t.test('concurrent exchanges of one code: at most one gets tokens, and none survives', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const { code } = await getCode(h)
  const results = await Promise.all([exchange(h, code), exchange(h, code), exchange(h, code)])
  const ok = results.filter((r) => r.statusCode === 200)
  t.ok(ok.length <= 1)
  t.equal(results.filter((r) => r.json().error === 'invalid_grant').length, results.length - ok.length)
  for (const r of ok) t.equal((await h.deps.families.get(claimsOf(r.json().access_token).sid as string))?.revoked, true, 'a replayed code leaves no live family')
})

t.test('the code is bound to client, redirect URI and PKCE verifier', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const wrongVerifier = await exchange(h, (await getCode(h)).code, { code_verifier: 'x'.repeat(43) })
  t.same(wrongVerifier.json(), { error: 'invalid_grant', error_description: 'the code_verifier does not match the code_challenge' })
  const wrongRedirect = await exchange(h, (await getCode(h)).code, { redirect_uri: 'http://localhost:3000/callback' })
  t.equal(wrongRedirect.json().error, 'invalid_grant', 'another registered URI of the same client is still wrong')
  const wrongClient = await exchange(h, (await getCode(h)).code, { client_id: 'spa' }, null)
  t.equal(wrongClient.json().error, 'invalid_grant', 'a public client presenting a code issued to web')
  const otherConfidential = await exchange(h, (await getCode(h)).code, {}, basic('cli', 'cli-secret'))
  t.equal(otherConfidential.json().error, 'unauthorized_client', 'cli may not use the grant at all')

  // A failed attempt spends the code: a verifier cannot be guessed repeatedly.
  const { code } = await getCode(h)
  t.equal((await exchange(h, code, { code_verifier: 'y'.repeat(43) })).json().error, 'invalid_grant')
  t.equal((await exchange(h, code)).json().error, 'invalid_grant')
})

t.test('malformed and missing parameters are invalid_request; unknown codes invalid_grant', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const { code } = await getCode(h)
  for (const [name, extra] of Object.entries({
    'verifier too short': { code_verifier: 'a'.repeat(42) },
    'verifier too long': { code_verifier: 'a'.repeat(129) },
    'verifier bad chars': { code_verifier: 'a'.repeat(42) + '!' },
  })) {
    const res = await exchange(h, code, extra)
    t.equal(res.statusCode, 400, name)
    t.equal(res.json().error, 'invalid_request', name)
  }
  for (const missing of ['code', 'redirect_uri', 'code_verifier']) {
    const params: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER }
    delete params[missing]
    const res = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: WEB }, payload: form(params) })
    t.same(res.json(), { error: 'invalid_request', error_description: `missing parameter ${missing}` })
  }
  t.equal((await exchange(h, code)).statusCode, 200, 'malformed attempts did not spend the code')
  for (const bad of ['A'.repeat(43), 'nope', '<script>', 'é'.repeat(43)]) {
    const res = await exchange(h, bad)
    t.equal(res.statusCode, 400)
    t.equal(res.json().error, 'invalid_grant')
  }
})

t.test('a code lives 60 seconds', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const late = await getCode(h)
  const inTime = await getCode(h)
  h.clock.advanceSeconds(59)
  t.equal((await exchange(h, inTime.code)).statusCode, 200)
  h.clock.advanceSeconds(2)
  t.equal((await exchange(h, late.code)).json().error, 'invalid_grant')
})

t.test('logging out between the redirect and the exchange voids the code', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const { code, cookies } = await getCode(h)
  const page = await h.app.inject({ method: 'GET', url: '/logout', cookies })
  const pending = Object.fromEntries(page.cookies.map((c) => [c.name, c.value]))
  const out = await h.app.inject({ method: 'POST', url: '/logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form({ ...parseLogoutForm(page.body), action: 'logout' }), cookies: { ...cookies, ...pending } })
  t.equal(out.statusCode, 200)
  t.match(out.body, /You have been signed out/)
  t.equal((await exchange(h, code)).json().error, 'invalid_grant')
})

t.test('a logout that lands while the code is being exchanged leaves no live token', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const { code, cookies } = await getCode(h)
  const session = await h.deps.sessions.resolve(cookies.gh_session!.replace(/^s:/, '').split('.').slice(0, 2).join('.'))
  t.ok(session)
  // The logout runs after the grant checked the session and before the family exists.
  const families = h.deps.families
  const create = families.create.bind(families)
  families.create = async (input) => {
    await endSession(h.deps, h.app.log, session!.id, 'logout')
    return await create(input)
  }
  const res = await exchange(h, code)
  families.create = create
  t.equal(res.json().error, 'invalid_grant')
  t.same(await h.deps.families.listByUser(session!.userId), [], 'the family started meanwhile is revoked')
  t.equal(h.published().length, 1, 'and announced')
})

t.test('a client without refresh_token gets no refresh token; the password grant gets an ID token without sid', async (t) => {
  const h = await startOidcApp({ clients: [{ client_id: 'noref', client_secret: 'noref-secret-noref', grant_types: ['authorization_code'], scope: 'openid', redirect_uris: [REDIRECT_URI] }] })
  t.teardown(h.close)
  const { code } = await getCode(h, { client_id: 'noref', scope: 'openid' })
  const body = (await exchange(h, code, {}, basic('noref', 'noref-secret-noref'))).json()
  t.notOk(body.refresh_token)
  t.ok(body.id_token)
  // DESIGN §10.1: the access token still carries a revocable sid (issue 12, finding 5).
  const sid = claimsOf(body.access_token).sid as string
  t.match(sid, /^[A-Za-z0-9_-]{22}$/)
  t.equal((await h.deps.families.get(sid))?.clientId, 'noref', 'its sid is a family, reached by every revocation path')
  const pw = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'bob', password: 'bob-password', scope: 'openid documents:read' }) })
  const id = claimsOf(pw.json().id_token)
  t.equal(id.aud, 'cli')
  t.notOk(id.sid, 'no login session behind a password grant')
  t.notOk(id.nonce)
  const noOpenid = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'bob', password: 'bob-password', scope: 'documents:read' }) })
  t.notOk(noOpenid.json().id_token, 'no openid scope, no ID token')
})

t.test('roles reach only clients with release_roles (DESIGN §10.1): an admin signing in to the SPA hands it no admin token', async (t) => {
  const h = await startOidcApp({
    clients: [{ client_id: 'first-party-no-roles', client_secret: 'fp-secret', grant_types: ['password'], scope: 'openid', audience: 'api://resource', release_roles: false }],
  })
  t.teardown(h.close)
  const spaRedirect = 'http://127.0.0.1:3000/spa/callback'
  const { code } = await getCode(h, { client_id: 'spa', redirect_uri: spaRedirect, scope: 'openid documents:read' })
  const res = await exchange(h, code, { client_id: 'spa', redirect_uri: spaRedirect }, null)
  t.equal(res.statusCode, 200, res.body)
  const at = claimsOf(res.json().access_token)
  t.match(at, { client_id: 'spa', sub: String })
  t.notOk('roles' in at, 'the public SPA gets no roles (release_roles defaults to false without the password grant)')
  const refreshed = await h.app.inject({
    method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ grant_type: 'refresh_token', refresh_token: res.json().refresh_token, client_id: 'spa' }),
  })
  t.equal(refreshed.statusCode, 200, refreshed.body)
  t.notOk('roles' in claimsOf(refreshed.json().access_token), 'nor on refresh')

  const password = async (auth: string) =>
    claimsOf((await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' }) })).json().access_token)
  t.same((await password(basic('cli', 'cli-secret'))).roles, ['admin'], 'a password-grant (first-party) client gets them by default')
  t.notOk('roles' in (await password(basic('first-party-no-roles', 'fp-secret'))), 'unless it sets release_roles: false')
  const web = await exchange(h, (await getCode(h)).code)
  t.same(claimsOf(web.json().access_token).roles, ['admin'], 'the demo web app sets release_roles: true in dev.json')
})
