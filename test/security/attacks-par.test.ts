/**
 * Attack regressions for pushed authorization requests (RFC 9126, DESIGN §10.3), end to end
 * through the browser login and the code exchange: a request_uri is single use, bound to the
 * client that pushed it, expires; REQUIRE_PAR and require_pushed_authorization_requests cannot
 * be skipped; nothing in the URL beside request_uri counts; a push cannot chain a request_uri,
 * swap client_id, or go unauthenticated. The unit-level twins are in
 * services/auth/test/par/par.test.ts.
 */
import t, { type Test } from 'tap'
import { browserLogin as signIn, injectFetch } from '@gatehouse/test-harness'
import { s256 } from '../../services/auth/src/authorize/pkce.js'
import { authorizeQuery, basic, exchangeCode, FORM, form, REDIRECT_URI, startOidcApp, WEB, type OidcApp } from './auth-fixture.js'

const OTHER_REDIRECT_URI = 'http://localhost:3000/callback'

/** Pushes `web`'s standard authorization request (auth-fixture's), with `extra`. */
async function push(h: OidcApp, extra: Record<string, string> = {}, auth: string | null = WEB) {
  const headers: Record<string, string> = { ...FORM }
  if (auth !== null) headers.authorization = auth
  return await h.app.inject({ method: 'POST', url: '/par', headers, payload: `${authorizeQuery()}&${form(extra)}`.replace(/&$/, '') })
}

async function pushed(t: Test, h: OidcApp, extra: Record<string, string> = {}): Promise<string> {
  const res = await push(h, extra)
  t.equal(res.statusCode, 201)
  return res.json().request_uri as string
}

/** A browser at /authorize with `query`: signs alice in when a login page comes; what the client gets back. */
async function visit(h: OidcApp, query: Record<string, string>) {
  const url = new URL(`/authorize?${new URLSearchParams(query)}`, h.issuer)
  try {
    return await signIn(url, { fetch: injectFetch(h.app) })
  } catch (err) {
    return { refused: String(err) }
  }
}

t.test('PAR: a request_uri is single use, its code exchanged once', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  const first = await visit(h, { client_id: 'web', request_uri: requestUri })
  t.ok('code' in first && first.code, 'first use: a code')
  if ('code' in first && first.code) t.equal((await exchangeCode(h, first.code)).statusCode, 200, 'exchanged for tokens')
  const second = await visit(h, { client_id: 'web', request_uri: requestUri })
  t.match(second, { refused: /answered 400/ }, 'second use: refused on a page')
})

t.test('PAR: a request_uri pushed by one client is refused for another, and burnt', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  t.match(await visit(h, { client_id: 'spa', request_uri: requestUri }), { refused: /answered 400/ })
  t.match(await visit(h, { client_id: 'web', request_uri: requestUri }), { refused: /answered 400/ }, 'the leaked reference is dead for its owner too')
})

t.test('PAR: an expired request_uri is refused', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  h.clock.advanceSeconds(h.config.parTtl + 1)
  t.match(await visit(h, { client_id: 'web', request_uri: requestUri }), { refused: /answered 400/ })
})

t.test("PAR: the URL's parameters beside request_uri do not count — the code goes where the push said, for the push's verifier", async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const requestUri = await pushed(t, h)
  const attackerVerifier = 'attacker-verifier-'.padEnd(43, 'x')
  const login = await visit(h, { client_id: 'web', request_uri: requestUri, redirect_uri: OTHER_REDIRECT_URI, code_challenge: s256(attackerVerifier), code_challenge_method: 'S256', state: 'attacker', scope: 'openid documents:write' })
  if (!('code' in login) || !login.code) return t.fail(`no code: ${JSON.stringify(login)}`)
  t.equal(login.redirect.origin + login.redirect.pathname, REDIRECT_URI, 'the pushed redirect_uri')
  t.equal(login.redirect.searchParams.get('state'), 'state-1', 'the pushed state')
  t.equal((await exchangeCode(h, login.code, { code_verifier: attackerVerifier, redirect_uri: OTHER_REDIRECT_URI })).statusCode, 400, "the URL's PKCE challenge was not bound")
})

t.test('PAR: REQUIRE_PAR and require_pushed_authorization_requests cannot be skipped', async (t) => {
  const global = await startOidcApp({ env: { REQUIRE_PAR: 'true' } })
  t.teardown(global.close)
  const plain = await visit(global, Object.fromEntries(new URLSearchParams(authorizeQuery())))
  t.ok('redirect' in plain && plain.redirect.searchParams.get('error') === 'invalid_request' && !plain.code, 'REQUIRE_PAR: a plain request gets invalid_request, no code')
  const viaPar = await visit(global, { client_id: 'web', request_uri: await pushed(t, global) })
  t.ok('code' in viaPar && viaPar.code, 'REQUIRE_PAR: a pushed request gets a code')

  const perClient = await startOidcApp({
    clients: [{ client_id: 'par-only', client_secret: 'par-only-secret', grant_types: ['authorization_code'], scope: 'openid', audience: 'api://resource', redirect_uris: [REDIRECT_URI], require_pushed_authorization_requests: true }],
  })
  t.teardown(perClient.close)
  const query = Object.fromEntries(new URLSearchParams(authorizeQuery({ client_id: 'par-only', scope: 'openid' })))
  const refused = await visit(perClient, query)
  t.ok('redirect' in refused && refused.redirect.searchParams.get('error') === 'invalid_request' && !refused.code, 'per client: a plain request gets invalid_request, no code')
  const res = await perClient.app.inject({ method: 'POST', url: '/par', headers: { ...FORM, authorization: basic('par-only', 'par-only-secret') }, payload: form(query) })
  t.equal(res.statusCode, 201)
  const served = await visit(perClient, { client_id: 'par-only', request_uri: res.json().request_uri })
  t.ok('code' in served && served.code, 'per client: a pushed request gets a code')
})

t.test('PAR: a push cannot carry a request_uri, name another client, or skip authentication', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const real = await pushed(t, h)
  const chained = await push(h, { request_uri: real })
  t.equal(chained.statusCode, 400)
  t.match(chained.json(), { error: 'invalid_request', error_description: /request_uri must not be pushed/ })
  // authorizeQuery names web; a second client_id is a repeat, so replace it.
  const swapped = await h.app.inject({ method: 'POST', url: '/par', headers: { ...FORM, authorization: WEB }, payload: authorizeQuery({ client_id: 'spa', redirect_uri: 'http://127.0.0.1:3000/spa/callback', scope: 'openid' }) })
  t.equal(swapped.statusCode, 400)
  t.equal(swapped.json().error, 'invalid_request', "web's credentials, spa's client_id")
  for (const [name, auth] of [['wrong secret', basic('web', 'nope')], ['no credentials', null], ['another client', basic('cli', 'cli-secret')]] as const) {
    const res = await push(h, {}, auth)
    t.ok(res.statusCode === 401 || res.statusCode === 400, `${name}: refused (${res.statusCode})`)
    t.notOk(res.json().request_uri, `${name}: no request_uri`)
  }
  t.equal((await push(h, {}, basic('web', 'nope'))).json().error, 'invalid_client')
  t.equal((await visit(h, { client_id: 'web', request_uri: real }) as { code?: string }).code?.length, 43, 'the genuine push is still good')
})
