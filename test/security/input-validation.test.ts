/**
 * Input validation at every auth endpoint (DESIGN §8: "request bodies validated by schema with
 * size limits"; RFC 6749 §3.1/§3.2: no repeated parameters): each parameter has a size bound
 * (services/auth/src/http/schemas.ts), bodies above the limit are 413, content types nobody
 * parses are 415, repeated parameters are invalid_request — as RFC 6749 §5.2 JSON at the OAuth
 * endpoints and as a page with the security headers at the browser ones. /token's own cases are
 * in services/auth/test/routes/token.test.ts.
 */
import t, { type Test } from 'tap'
import { authorizeQuery, CLI, FORM, form, startOidcApp, WEB, type OidcApp } from './auth-fixture.js'

interface Res {
  statusCode: number
  headers: Record<string, string | string[] | number | undefined>
  body: string
  json(): Record<string, unknown>
}

function jsonError(t: Test, res: Res, status: number, description: RegExp | undefined, name: string): void {
  t.equal(res.statusCode, status, `${name}: ${status}`)
  t.match(res.headers['content-type'], /^application\/json/, `${name}: JSON`)
  t.equal(res.json().error, 'invalid_request', `${name}: invalid_request`)
  if (description) t.match(res.json().error_description, description, `${name}: says why`)
  t.equal(res.headers['cache-control'], 'no-store')
}

function page(t: Test, res: Res, status: number, name: string): void {
  t.equal(res.statusCode, status, `${name}: ${status}`)
  t.match(res.headers['content-type'], /^text\/html/, `${name}: a page`)
  t.match(String(res.headers['content-security-policy']), /default-src 'none'.*frame-ancestors 'none'/, `${name}: with the CSP`)
  t.equal(res.headers['x-frame-options'], 'DENY')
  t.notOk(res.headers.location, `${name}: never a redirect`)
}

const post = async (h: OidcApp, url: string, payload: string, headers: Record<string, string> = FORM, auth?: string) =>
  (await h.app.inject({ method: 'POST', url, headers: auth ? { ...headers, authorization: auth } : headers, payload })) as unknown as Res

t.test('OAuth endpoints: size bounds, repeats, body limit, content types', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const cases: [string, string, Record<string, string>, string | undefined][] = [
    ['/token', 'username', { grant_type: 'password', password: 'x' }, CLI],
    ['/token', 'password', { grant_type: 'password', username: 'alice' }, CLI],
    ['/token', 'refresh_token', { grant_type: 'refresh_token' }, CLI],
    ['/token', 'code', { grant_type: 'authorization_code', redirect_uri: 'http://127.0.0.1:3000/callback', code_verifier: 'v'.repeat(43) }, WEB],
    ['/token', 'scope', { grant_type: 'client_credentials' }, CLI],
    ['/token', 'client_secret', { grant_type: 'client_credentials', client_id: 'cli' }, undefined],
    ['/revoke', 'token', {}, CLI],
    ['/introspect', 'token', {}, WEB],
    ['/revoke', 'token_type_hint', { token: 'x' }, CLI],
    ['/userinfo', 'access_token', {}, undefined],
  ]
  const bounds: Record<string, number> = { username: 256, password: 1024, refresh_token: 512, code: 512, scope: 2048, client_secret: 512, token: 16_384, token_type_hint: 64, access_token: 8192 }
  for (const [url, param, rest, auth] of cases) {
    const max = bounds[param]!
    const over = await post(h, url, form({ ...rest, [param]: 'a'.repeat(max + 1) }), FORM, auth)
    jsonError(t, over, 400, new RegExp(`parameter ${param} is too long`), `${url} ${param} of ${max + 1} characters`)
    const at = await post(h, url, form({ ...rest, [param]: 'a'.repeat(max) }), FORM, auth)
    t.notMatch(at.body, /is too long/, `${url} ${param} of ${max} characters passes the schema`)
  }
  for (const url of ['/revoke', '/introspect']) {
    jsonError(t, await post(h, url, 'token=a&token=b', FORM, WEB), 400, /token is repeated/, `${url} repeated token`)
    jsonError(t, await post(h, url, 'token=a&client_id=web&client_id=spa', FORM), 400, /client_id is repeated/, `${url} repeated client_id`)
    jsonError(t, await post(h, url, `token=${'x'.repeat(70_000)}`, FORM, WEB), 413, /too large/, `${url} 70 kB body`)
    jsonError(t, await post(h, url, '<token/>', { 'content-type': 'application/xml' }, WEB), 415, undefined, `${url} XML`)
    jsonError(t, await post(h, url, 'token=x', { 'content-type': 'text/plain' }, WEB), 400, /x-www-form-urlencoded/, `${url} text/plain`)
    jsonError(t, await post(h, url, '{"token":"x"}', { 'content-type': 'application/json' }, WEB), 400, /x-www-form-urlencoded/, `${url} JSON`)
    const many = Array.from({ length: 41 }, (_, i) => `p${i}=1`).join('&')
    jsonError(t, await post(h, url, `token=x&${many}`, FORM, WEB), 400, /too many parameters/, `${url} 42 parameters`)
    jsonError(t, await post(h, url, `token=x&${'t'.repeat(2000)}=1`, FORM, WEB), 400, /too long/, `${url} an unknown parameter of 2000 characters`)
  }
  jsonError(t, await post(h, '/token', `grant_type=password&${'a'.repeat(9)}=1&${'a'.repeat(9)}=2&${'a'.repeat(9)}=3&${'a'.repeat(9)}=4&${'a'.repeat(9)}=5&${'a'.repeat(9)}=6&${'a'.repeat(9)}=7&${'a'.repeat(9)}=8&${'a'.repeat(9)}=9`, FORM, CLI), 400, /repeated/, '/token a parameter 9 times')
  const ui = (await h.app.inject({ method: 'POST', url: '/userinfo', headers: FORM, payload: 'access_token=a&access_token=b' })) as unknown as Res
  t.equal(ui.statusCode, 400, '/userinfo repeated access_token')
  t.equal(ui.json().error, 'invalid_request')
  const uiBig = (await h.app.inject({ method: 'POST', url: '/userinfo', headers: FORM, payload: `access_token=${'x'.repeat(70_000)}` })) as unknown as Res
  t.equal(uiBig.statusCode, 413, '/userinfo 70 kB body')
})

t.test('browser endpoints: the same bounds, answered with a page', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const get = async (url: string) => (await h.app.inject({ method: 'GET', url })) as unknown as Res
  page(t, await get(`/authorize?${authorizeQuery({ client_id: 'c'.repeat(257) })}`), 400, '/authorize client_id of 257 characters')
  page(t, await get(`/authorize?${authorizeQuery({ redirect_uri: `http://127.0.0.1:3000/${'p'.repeat(2100)}` })}`), 400, '/authorize redirect_uri of 2100 characters')
  page(t, await get(`/authorize?${authorizeQuery()}&${Array.from({ length: 40 }, (_, i) => `p${i}=1`).join('&')}`), 400, '/authorize 48 parameters')
  page(t, await get(`/authorize?${authorizeQuery()}&${'k'.repeat(3000)}=1`), 400, '/authorize an unknown parameter name of 3000 characters')
  page(t, await post(h, '/authorize', `client_id=${'c'.repeat(5000)}`), 400, 'POST /authorize oversized client_id')
  page(t, await post(h, '/authorize', 'x'.repeat(70_000)), 413, 'POST /authorize 70 kB body')
  page(t, await post(h, '/authorize', '<a/>', { 'content-type': 'application/xml' }), 415, 'POST /authorize XML')
  page(t, await post(h, '/login', form({ interaction: 'i'.repeat(65), csrf: 'x', username: 'alice', password: 'x' })), 400, '/login interaction of 65 characters')
  page(t, await post(h, '/login', form({ interaction: 'A'.repeat(16), csrf: 'x', username: 'u'.repeat(257), password: 'x' })), 400, '/login username of 257 characters')
  page(t, await post(h, '/login', form({ interaction: 'A'.repeat(16), csrf: 'x', username: 'alice', password: 'p'.repeat(1025) })), 400, '/login password of 1025 characters')
  page(t, await post(h, '/login', `password=${'p'.repeat(70_000)}`), 413, '/login 70 kB body')
  page(t, await post(h, '/login', '<a/>', { 'content-type': 'application/xml' }), 415, '/login XML')
  page(t, await post(h, '/login', 'username=a&username=b'), 400, '/login repeated username')
  page(t, await get(`/logout?id_token_hint=${'e'.repeat(8193)}`), 400, '/logout id_token_hint of 8193 characters')
  page(t, await get(`/logout?state=${'s'.repeat(2049)}`), 400, '/logout state of 2049 characters')
  page(t, await post(h, '/logout', `state=${'s'.repeat(70_000)}`), 413, 'POST /logout 70 kB body')
  page(t, await post(h, '/logout', '<a/>', { 'content-type': 'application/xml' }), 415, 'POST /logout XML')
  t.notMatch(h.logs.text, /"level":50/, 'none of it was an unexpected error')
})
