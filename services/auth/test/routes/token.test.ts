import t from 'tap'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { basic, form, makeApp, passwordLogin, token } from '../helpers.js'

t.test('password grant issues an RFC 9068 access token and a refresh token', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const res = await passwordLogin(h.app)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  t.equal(body.token_type, 'Bearer')
  t.equal(body.expires_in, 900)
  t.equal(body.scope, 'openid profile email documents:read documents:write reports:read')
  t.type(body.refresh_token, 'string')
  t.ok(body.refresh_token.length >= 60, 'refresh token carries ≥ 256 bits')

  const header = decodeProtectedHeader(body.access_token)
  t.same(header, { alg: 'RS256', typ: 'at+jwt', kid: h.deps.keys.current().active.kid })
  const jwks = createLocalJWKSet(h.deps.keys.current().jwks)
  const { payload } = await jwtVerify(body.access_token, jwks, {
    issuer: 'http://127.0.0.1:4000',
    audience: 'api://resource',
    typ: 'at+jwt',
    currentDate: new Date(h.clock.ms),
  })
  t.match(payload, { client_id: 'cli', roles: ['admin'], scope: body.scope })
  t.match(payload.sub, /^u_/)
  t.type(payload.jti, 'string')
  t.type(payload.sid, 'string')
  t.equal(payload.exp! - payload.iat!, 900)
  t.equal(payload.auth_time, payload.iat)
  t.equal(h.logs.events('token.issued').length, 1)
})

t.test('wrong password and unknown user are indistinguishable', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const a = await passwordLogin(h.app, 'alice', 'wrong')
  const b = await passwordLogin(h.app, 'mallory', 'wrong')
  t.equal(a.statusCode, 400)
  t.equal(b.statusCode, 400)
  t.same(a.json(), b.json())
  t.same(a.json(), { error: 'invalid_grant', error_description: 'invalid username or password' })
  t.equal(h.logs.events('login.failed').length, 2)
})

t.test('usernames are case-insensitive', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  t.equal((await passwordLogin(h.app, 'ALICE')).statusCode, 200)
})

t.test('client authentication', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const login = { grant_type: 'password', username: 'bob', password: 'bob-password' }

  const wrong = await token(h.app, login, basic('cli', 'nope'))
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().error, 'invalid_client')
  t.match(wrong.headers['www-authenticate'], /^Basic realm=/)

  const unknown = await token(h.app, login, basic('ghost', 'nope'))
  t.equal(unknown.statusCode, 401)
  t.same(unknown.json(), wrong.json())

  const post = await token(h.app, { ...login, client_id: 'cli', client_secret: 'cli-secret' }, null)
  t.equal(post.statusCode, 200, 'client_secret_post works')

  const postWrong = await token(h.app, { ...login, client_id: 'cli', client_secret: 'x' }, null)
  t.equal(postWrong.statusCode, 401)
  t.notOk(postWrong.headers['www-authenticate'], 'no Basic challenge when the client did not try Basic')

  const none = await token(h.app, login, null)
  t.equal(none.statusCode, 401)
  t.equal(none.json().error, 'invalid_client')

  const both = await token(h.app, { ...login, client_secret: 'cli-secret' })
  t.equal(both.statusCode, 400)
  t.equal(both.json().error, 'invalid_request')

  const malformed = await token(h.app, login, 'Basic !!!')
  t.equal(malformed.statusCode, 401)

  t.ok(h.logs.events('client.auth_failed').length >= 4)
})

t.test('grant type checks', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const unsupported = await token(h.app, { grant_type: 'urn:example:magic' })
  t.equal(unsupported.json().error, 'unsupported_grant_type')
  t.equal(unsupported.statusCode, 400)
  const notAllowed = await token(h.app, { grant_type: 'password', username: 'alice', password: 'alice-password' }, basic('reporting-service', 'reporting-secret'))
  t.equal(notAllowed.json().error, 'unauthorized_client')
  const missing = await token(h.app, {})
  t.equal(missing.json().error, 'invalid_request')
  const proto = await token(h.app, { grant_type: '__proto__' })
  t.equal(proto.json().error, 'unsupported_grant_type')
})

t.test('scope', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const narrow = await token(h.app, { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'documents:read' })
  t.equal(narrow.json().scope, 'documents:read')
  const bad = await token(h.app, { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'internal:read' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error, 'invalid_scope')
  const malformed = await token(h.app, { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'a\\b' })
  t.equal(malformed.json().error, 'invalid_scope')
})

t.test('malformed requests get RFC 6749 errors, never 5xx', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const dup = await h.app.inject({
    method: 'POST',
    url: '/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') },
    payload: 'grant_type=password&username=alice&username=bob&password=x',
  })
  t.equal(dup.statusCode, 400)
  t.same(dup.json(), { error: 'invalid_request', error_description: 'parameter username is repeated' })

  const json = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/json' }, payload: '{"grant_type":"password"}' })
  t.equal(json.statusCode, 400)
  t.equal(json.json().error, 'invalid_request')

  const text = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(text.statusCode, 400)
  t.equal(text.json().error, 'invalid_request')

  const weird = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/xml' }, payload: '<x/>' })
  t.equal(weird.statusCode, 415)
  t.equal(weird.json().error, 'invalid_request')

  const huge = await h.app.inject({
    method: 'POST',
    url: '/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ grant_type: 'password', username: 'a'.repeat(100_000) }),
  })
  t.equal(huge.statusCode, 413)
  t.equal(huge.json().error, 'invalid_request')

  const longUser = await passwordLogin(h.app, 'a'.repeat(5000), 'x')
  t.same(longUser.json(), { error: 'invalid_request', error_description: 'parameter username is too long' }, 'usernames have at most 256 characters (schema)')

  const empty = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(empty.statusCode, 401, 'no client authentication at all')
  t.equal(empty.json().error, 'invalid_client')

  const get = await h.app.inject({ method: 'GET', url: '/token' })
  t.equal(get.statusCode, 404)
  t.equal(get.json().error, 'not_found')

  for (const r of [dup, json, weird, huge, empty]) t.notMatch(r.body, /at .*\.ts:\d+/, 'no stack trace')
})

t.test('request ids', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const res = await h.app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } })
  t.equal(res.headers['x-request-id'], 'abc-123')
  const gen = await h.app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'bad id with spaces' } })
  t.match(gen.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  // Refusals and unknown routes carry it too (the error handler keeps the headers set on arrival).
  const refused = await h.app.inject({ method: 'POST', url: '/token', headers: { 'x-request-id': 'refused-1', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=client_credentials' })
  t.equal(refused.statusCode, 401)
  t.equal(refused.headers['x-request-id'], 'refused-1')
  const missing = await h.app.inject({ method: 'GET', url: '/no-such-route', headers: { 'x-request-id': 'missing-1' } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['x-request-id'], 'missing-1')
})
