/**
 * POST /par and /authorize?request_uri (RFC 9126) through app.inject: the attack regressions
 * (single use, bound to the pusher, expiry, REQUIRE_PAR and the per-client requirement, no
 * request_uri inside a push, no client_id swap, client authentication, the URL's own parameters
 * ignored), the JSON errors of a push, and `dpop_jkt` (RFC 9449 §10) carried to the code.
 */
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { s256 } from '../../src/authorize/pkce.js'
import { referenceOf } from '../../src/par/request-store.js'
import { RedisPushedRequestStore } from '../../src/par/redis-request-store.js'
import { createRedis } from '../../src/store/redis-connection.js'
import { basic, form, makeApp, type TestApp } from '../helpers.js'
import { startOidcApp, parseLoginForm, type OidcApp } from '../oidc/harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
/** Also registered for `web` (dev.json): a URL that would win if the URL's parameters counted. */
const OTHER_REDIRECT_URI = 'http://localhost:3000/callback'
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
const JKT = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'
const WEB = basic('web', 'web-secret')

function requestParams(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const p: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: 'web',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile',
    state: 'pushed-state',
    nonce: 'pushed-nonce',
    code_challenge: s256(VERIFIER),
    code_challenge_method: 'S256',
    ...extra,
  }
  return Object.fromEntries(Object.entries(p).filter((e): e is [string, string] => e[1] !== undefined))
}

async function push(h: Pick<TestApp, 'app'>, params: Record<string, string> | string = requestParams(), auth: string | null = WEB) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (auth !== null) headers.authorization = auth
  return await h.app.inject({ method: 'POST', url: '/par', headers, payload: typeof params === 'string' ? params : form(params) })
}

async function pushed(t: Test, h: Pick<TestApp, 'app'>, params?: Record<string, string>, auth?: string | null): Promise<string> {
  const res = await push(h, params, auth)
  t.equal(res.statusCode, 201, `pushed: ${res.body}`)
  return res.json().request_uri as string
}

async function authorize(h: Pick<TestApp, 'app'>, query: Record<string, string>, cookies?: Record<string, string>) {
  return await h.app.inject({ method: 'GET', url: '/authorize?' + new URLSearchParams(query).toString(), ...(cookies ? { cookies } : {}) })
}

function cookiesOf(res: LightMyRequestResponse): Record<string, string> {
  return Object.fromEntries(res.cookies.map((c) => [c.name, c.value]))
}

/** The login page of `page`, signed in as alice: the redirect with the code. */
async function signIn(h: OidcApp, page: LightMyRequestResponse): Promise<URL> {
  const fields = { ...parseLoginForm(page.body), username: 'alice', password: 'alice-password' }
  const res = await h.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form(fields), cookies: cookiesOf(page) })
  if (res.statusCode !== 303) throw new Error(`login answered ${res.statusCode}`)
  return new URL(res.headers.location as string)
}

/** An error page: 400, HTML, never a redirect. */
function assertRefusedPage(t: Test, res: LightMyRequestResponse, name: string) {
  t.equal(res.statusCode, 400, name)
  t.notOk(res.headers.location, `${name}: never redirected`)
  t.match(res.headers['content-type'], /^text\/html/, `${name}: a page`)
}

function assertJsonError(t: Test, res: LightMyRequestResponse, status: number, error: string, name: string) {
  t.equal(res.statusCode, status, name)
  t.equal(res.json().error, error, name)
  t.type(res.json().error_description, 'string', `${name}: described`)
  t.equal(res.headers['cache-control'], 'no-store', `${name}: no-store`)
  t.notOk(res.headers.location, `${name}: not a redirect`)
}

t.test('push → /authorize?request_uri → login → code: 201, no-store, a 256-bit URN, the pushed request carried through', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const res = await push(h, requestParams({ dpop_jkt: JKT }))
  t.equal(res.statusCode, 201)
  t.equal(res.headers['cache-control'], 'no-store')
  t.match(res.headers['content-type'], /^application\/json/)
  const { request_uri: requestUri, expires_in: expiresIn } = res.json()
  t.match(requestUri, /^urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]{43}$/)
  t.equal(expiresIn, 60, 'PAR_TTL by default')
  t.same(Object.keys(res.json()).sort(), ['expires_in', 'request_uri'])
  t.match(h.logs.events('par.pushed')[0], { client_id: 'web', auth_method: 'client_secret_basic' })

  const page = await authorize(h, { client_id: 'web', request_uri: requestUri })
  t.equal(page.statusCode, 200, 'the login page')
  const back = await signIn(h, page)
  t.equal(back.origin + back.pathname, REDIRECT_URI)
  t.equal(back.searchParams.get('state'), 'pushed-state')
  const consumed = await h.deps.codes.consume(back.searchParams.get('code')!)
  t.equal(consumed.status, 'ok')
  if (consumed.status !== 'ok') return
  t.match(consumed.grant, { clientId: 'web', redirectUri: REDIRECT_URI, scope: 'openid profile', nonce: 'pushed-nonce', codeChallenge: s256(VERIFIER), dpopJkt: JKT }, 'the code carries the pushed request, dpop_jkt included')
  const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gatehouse_pushed_authorization_requests_total\{outcome="pushed"\} 1/)
  t.match(metrics, /gatehouse_pushed_authorization_requests_total\{outcome="used"\} 1/)
})

t.test('attack: a request_uri is single use (RFC 9126 §4)', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  t.equal((await authorize(h, { client_id: 'web', request_uri: requestUri })).statusCode, 200, 'first use')
  const again = await authorize(h, { client_id: 'web', request_uri: requestUri })
  assertRefusedPage(t, again, 'second use')
  t.match(again.body, /unknown or was already used/)
  t.match(h.logs.events('authorize.rejected').at(-1), { error: 'invalid_request', detail: 'invalid_request_uri: not_found' })
})

t.test('attack: a request_uri works only for the client that pushed it, and another client spends it', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  const stolen = await authorize(h, { client_id: 'spa', request_uri: requestUri })
  assertRefusedPage(t, stolen, 'used with another client_id')
  t.match(stolen.body, /not issued to this client/)
  assertRefusedPage(t, await authorize(h, { client_id: 'web', request_uri: requestUri }), 'then dead for the pusher too')
  const fresh = await pushed(t, h)
  assertRefusedPage(t, await authorize(h, { request_uri: fresh }), 'no client_id at all (RFC 9101 §5)')
  t.equal((await authorize(h, { client_id: 'web', request_uri: fresh })).statusCode, 200, 'a refusal without client_id spends nothing')
})

t.test('attack: an expired request_uri is refused (PAR_TTL, injected clock)', async (t) => {
  // A clock that moves only when told (the OIDC harness's follows real time).
  const h = await makeApp({ PAR_TTL: '30' })
  t.teardown(h.close)
  const res = await push(h)
  t.equal(res.json().expires_in, 30)
  const late = res.json().request_uri as string
  const inTime = await pushed(t, h)
  h.clock.advance(29_999)
  t.equal((await authorize(h, { client_id: 'web', request_uri: inTime })).statusCode, 200, 'alive until PAR_TTL')
  h.clock.advance(1)
  const expired = await authorize(h, { client_id: 'web', request_uri: late })
  assertRefusedPage(t, expired, 'expired')
  t.match(expired.body, /expired/)
})

t.test('attack: malformed or foreign request_uri values are refused on a page', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const real = await pushed(t, h)
  const cases: Record<string, string> = {
    'another URN scheme': real.replace('request_uri', 'request-uri'),
    'a URL (request objects by reference are not fetched)': 'https://evil.example/request.jwt',
    'truncated': real.slice(0, -1),
    'unknown reference': `urn:ietf:params:oauth:request_uri:${'A'.repeat(43)}`,
  }
  for (const [name, value] of Object.entries(cases)) assertRefusedPage(t, await authorize(h, { client_id: 'web', request_uri: value }), name)
  const twice = await h.app.inject({ method: 'GET', url: `/authorize?client_id=web&request_uri=${encodeURIComponent(real)}&request_uri=${encodeURIComponent(real)}` })
  assertRefusedPage(t, twice, 'repeated request_uri')
  t.equal((await authorize(h, { client_id: 'web', request_uri: real })).statusCode, 200, 'none of that touched the genuine one')
})

t.test("attack: the URL's own parameters beside request_uri are ignored (RFC 9101 §6.3)", async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  const page = await authorize(h, {
    client_id: 'web',
    request_uri: requestUri,
    redirect_uri: OTHER_REDIRECT_URI,
    state: 'url-state',
    scope: 'openid documents:write',
    code_challenge: s256('x'.repeat(43)),
    code_challenge_method: 'S256',
    response_type: 'code',
    prompt: 'none',
  })
  t.equal(page.statusCode, 200, 'prompt=none from the URL did not count either')
  const back = await signIn(h, page)
  t.equal(back.origin + back.pathname, REDIRECT_URI, 'the pushed redirect_uri wins')
  t.equal(back.searchParams.get('state'), 'pushed-state')
  const consumed = await h.deps.codes.consume(back.searchParams.get('code')!)
  t.match(consumed, { status: 'ok', grant: { scope: 'openid profile', codeChallenge: s256(VERIFIER), redirectUri: REDIRECT_URI } })
})

t.test('attack: REQUIRE_PAR refuses a plain authorization request; a pushed one passes', async (t) => {
  const h = await startOidcApp({ env: { REQUIRE_PAR: 'true' } })
  t.teardown(h.close)
  const plain = await authorize(h, requestParams())
  t.equal(plain.statusCode, 302, 'redirected: the client and its redirect URI are valid')
  const back = new URL(plain.headers.location as string)
  t.equal(back.origin + back.pathname, REDIRECT_URI)
  t.equal(back.searchParams.get('error'), 'invalid_request')
  t.match(back.searchParams.get('error_description'), /pushed authorization requests/)
  t.equal(back.searchParams.get('state'), 'pushed-state')
  t.notOk(back.searchParams.get('code'))
  const bad = await authorize(h, requestParams({ redirect_uri: 'https://evil.example/cb' }))
  assertRefusedPage(t, bad, 'an unregistered redirect_uri is still never redirected to')
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.equal(doc.require_pushed_authorization_requests, true)
  t.equal((await authorize(h, { client_id: 'web', request_uri: await pushed(t, h) })).statusCode, 200, 'the pushed request is served')
})

t.test('attack: a client registered with require_pushed_authorization_requests cannot skip PAR; others can', async (t) => {
  const h = await startOidcApp({
    clients: [{
      client_id: 'par-only', client_secret: 'par-only-secret', grant_types: ['authorization_code'], scope: 'openid',
      audience: 'api://resource', redirect_uris: [REDIRECT_URI], require_pushed_authorization_requests: true,
    }],
  })
  t.teardown(h.close)
  const params = requestParams({ client_id: 'par-only', scope: 'openid' })
  const plain = await authorize(h, params)
  t.equal(plain.statusCode, 302)
  t.equal(new URL(plain.headers.location as string).searchParams.get('error'), 'invalid_request')
  const viaPost = await h.app.inject({ method: 'POST', url: '/authorize', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form(params) })
  t.equal(new URL(viaPost.headers.location as string).searchParams.get('error'), 'invalid_request', 'POST /authorize too')
  const requestUri = await pushed(t, h, params, basic('par-only', 'par-only-secret'))
  t.equal((await authorize(h, { client_id: 'par-only', request_uri: requestUri })).statusCode, 200, 'pushed: served')
  t.equal((await authorize(h, requestParams())).statusCode, 200, 'web is not required to push')
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.equal(doc.require_pushed_authorization_requests, false, 'the server-wide value')
  t.equal(doc.pushed_authorization_request_endpoint, `${h.issuer}/par`)
})

t.test('attack: request_uri (and request objects) inside a push are refused (RFC 9126 §2.1)', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const real = await pushed(t, h)
  for (const value of [real, 'https://evil.example/r']) {
    const res = await push(h, requestParams({ request_uri: value }))
    assertJsonError(t, res, 400, 'invalid_request', `request_uri ${value.slice(0, 30)} pushed`)
    t.match(res.json().error_description, /request_uri must not be pushed/, 'refused as RFC 9126 §2.1 says')
  }
  assertJsonError(t, await push(h, requestParams({ request: 'eyJhbGciOiJub25lIn0.e30.' })), 400, 'invalid_request', 'request object')
  t.equal((await authorize(h, { client_id: 'web', request_uri: real })).statusCode, 200, 'nothing chained')
})

t.test('attack: client_id in the push must be the authenticated client', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  assertJsonError(t, await push(h, requestParams({ client_id: 'spa', redirect_uri: 'http://127.0.0.1:3000/spa/callback' })), 400, 'invalid_request', 'web authenticates, names spa')
  assertJsonError(t, await push(h, requestParams({ client_id: undefined })), 400, 'invalid_request', 'client_id missing (RFC 9126 §2.1: required)')
  // client_secret_post and none name the client with client_id itself; a public client may push.
  const post = await push(h, requestParams({ client_secret: 'web-secret' }), null)
  t.equal(post.statusCode, 201, 'client_secret_post')
  const spa = await push(h, requestParams({ client_id: 'spa', redirect_uri: 'http://127.0.0.1:3000/spa/callback', scope: 'openid' }), null)
  t.equal(spa.statusCode, 201, 'a public client (none)')
  assertRefusedPage(t, await authorize(h, { client_id: 'web', request_uri: spa.json().request_uri }), "spa's request at web's name")
  // The secret authenticated the push; it is not part of the request kept.
  const kept = await h.deps.pushedRequests.take(referenceOf(post.json().request_uri)!, 'web')
  t.equal(kept.status, 'ok')
  if (kept.status === 'ok') t.notOk('client_secret' in kept.request.params, 'the client secret is not stored')
})

t.test('attack: bad client authentication is 401 invalid_client, as at /token', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const wrong = await push(h, requestParams(), basic('web', 'wrong'))
  assertJsonError(t, wrong, 401, 'invalid_client', 'wrong secret')
  t.match(wrong.headers['www-authenticate'], /^Basic /)
  assertJsonError(t, await push(h, requestParams(), null), 401, 'invalid_client', 'a confidential client without credentials')
  assertJsonError(t, await push(h, requestParams({ client_id: 'ghost' }), null), 401, 'invalid_client', 'unknown client')
  assertJsonError(t, await push(h, form(requestParams()) + '&client_secret=a&client_secret=b', null), 400, 'invalid_request', 'a repeated client_secret')
  t.equal(h.logs.events('client.auth_failed').length, 3)
  t.equal(h.logs.events('par.pushed').length, 0)
  t.notOk(h.logs.text.includes('web-secret'))
})

t.test('a push is validated as /authorize validates, with JSON errors instead of pages and redirects', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const cases: [string, Record<string, string | undefined>, string][] = [
    ['unregistered redirect_uri', { redirect_uri: 'https://evil.example/cb' }, 'invalid_request'],
    ['missing redirect_uri', { redirect_uri: undefined }, 'invalid_request'],
    ['missing response_type', { response_type: undefined }, 'invalid_request'],
    ['implicit flow', { response_type: 'token' }, 'unsupported_response_type'],
    ['no PKCE', { code_challenge: undefined }, 'invalid_request'],
    ['PKCE plain', { code_challenge_method: 'plain' }, 'invalid_request'],
    ['scope not allowed', { scope: 'openid internal:read' }, 'invalid_scope'],
    ['prompt none with login', { prompt: 'none login' }, 'invalid_request'],
    ['malformed dpop_jkt', { dpop_jkt: 'short' }, 'invalid_request'],
    ['dpop_jkt with a character outside base64url', { dpop_jkt: `${JKT.slice(0, 42)}=` }, 'invalid_request'],
  ]
  for (const [name, extra, error] of cases) assertJsonError(t, await push(h, requestParams(extra)), 400, error, name)
  assertJsonError(t, await push(h, form(requestParams()) + '&state=again'), 400, 'invalid_request', 'a repeated parameter')
  assertJsonError(t, await push(h, requestParams({ client_id: 'reporting-service' }), basic('reporting-service', 'reporting-secret')), 400, 'invalid_request', 'a client without redirect URIs')
  const notJson = await h.app.inject({ method: 'POST', url: '/par', headers: { authorization: WEB, 'content-type': 'text/plain' }, payload: 'x' })
  t.ok(notJson.statusCode === 415 || notJson.statusCode === 400, 'not a form')
  const big = await push(h, requestParams({ state: 's'.repeat(5000) }))
  assertJsonError(t, big, 400, 'invalid_request', 'a parameter over its bound')
  const get = await h.app.inject({ method: 'GET', url: '/par' })
  t.equal(get.statusCode, 405, 'RFC 9126 §2.3: POST only')
  t.equal(get.headers.allow, 'POST')
  const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gatehouse_pushed_authorization_requests_total\{outcome="refused"\} 12/)
})

t.test('unauthorized_client: a client without the code grant may not push', async (t) => {
  const h = await startOidcApp({
    clients: [{ client_id: 'no-code', client_secret: 'no-code-secret', grant_types: ['refresh_token'], scope: 'openid', audience: 'api://resource', redirect_uris: [REDIRECT_URI] }],
  })
  t.teardown(h.close)
  assertJsonError(t, await push(h, requestParams({ client_id: 'no-code', scope: 'openid' }), basic('no-code', 'no-code-secret')), 400, 'unauthorized_client', 'no authorization_code grant')
})

t.test('dpop_jkt at /authorize (RFC 9449 §10): checked, and carried to the code', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const bad = await authorize(h, requestParams({ dpop_jkt: 'x'.repeat(44) }))
  t.equal(bad.statusCode, 302)
  t.equal(new URL(bad.headers.location as string).searchParams.get('error'), 'invalid_request')
  const page = await authorize(h, requestParams({ dpop_jkt: JKT }))
  t.equal(page.statusCode, 200)
  const back = await signIn(h, page)
  t.match(await h.deps.codes.consume(back.searchParams.get('code')!), { status: 'ok', grant: { dpopJkt: JKT } })
  const plain = await signIn(h, await authorize(h, requestParams()))
  const grant = await h.deps.codes.consume(plain.searchParams.get('code')!)
  t.ok(grant.status === 'ok' && !('dpopJkt' in grant.grant && grant.grant.dpopJkt !== undefined), 'no dpop_jkt, none carried')
})

t.test('the store unreachable: /par answers 503 temporarily_unavailable JSON, /authorize?request_uri a 503 page, never 500', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  const dead = createRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, connectTimeoutMs: 300 })
  t.teardown(() => dead.disconnect())
  h.deps.pushedRequests = new RedisPushedRequestStore({ redis: dead, lifetimeMs: 60_000 })
  assertJsonError(t, await push(h), 503, 'temporarily_unavailable', 'push')
  const page = await authorize(h, { client_id: 'web', request_uri: requestUri })
  t.equal(page.statusCode, 503)
  t.notOk(page.headers.location, 'never redirected')
  t.match(page.headers['content-type'], /^text\/html/)
})
