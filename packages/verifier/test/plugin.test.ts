import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { compileRequirement, gatehouseAuth, peekAuth, type VerifierOptions } from '../src/index.js'
import { AUDIENCE, makeKey, ManualClock, rawSign, serviceClaims, startFakeIssuer, token, type SigningKey } from '@gatehouse/test-harness'

/** The fastify adapter: one register call, route options, RFC 6750 responses. */

const key = await makeKey('key-1')
const issuer = await startFakeIssuer({ keys: [key] })
t.teardown(() => issuer.close())
const clock = new ManualClock(Date.now())
const REALM = `Bearer realm="${AUDIENCE}"`
const MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor'
const PHISHING_RESISTANT = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant'

async function buildApp(t: Test, options: Partial<VerifierOptions> = {}): Promise<{ app: FastifyInstance; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } } })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  await app.register(gatehouseAuth, { issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now, ...options })
  app.get('/me', { config: { auth: { kind: 'user' } } }, async (request) => ({
    sub: request.auth.subject,
    client_id: request.auth.clientId,
    roles: request.auth.roles,
    scope: request.auth.scopes.join(' '),
  }))
  app.get('/documents', { config: { auth: { scopes: ['documents:read'] } } }, async () => ({ documents: [] }))
  app.post('/documents', { config: { auth: { scopes: ['documents:write'] } } }, async (_req, reply) => reply.code(201).send({ ok: true }))
  app.get('/admin', { config: { auth: { roles: ['admin'] } } }, async () => ({ admin: true }))
  app.get('/internal', { config: { auth: { kind: 'service', scopes: ['internal:read'] } } }, async (request) => ({ caller: request.auth.clientId }))
  app.get('/guarded', { config: { auth: (auth) => auth.subject === 'user-alice' } }, async () => ({ ok: true }))
  app.get('/both', { config: { auth: { scopes: ['documents:read'], guard: (auth) => auth.roles.includes('editor') } } }, async () => ({ ok: true }))
  app.get('/any', { config: { auth: true } }, async (request) => ({ kind: request.auth.kind }))
  app.get('/strong', { config: { auth: { scopes: ['documents:read'], acr: [MFA, PHISHING_RESISTANT] } } }, async (request) => ({ acr: request.auth.claims.acr }))
  app.get('/open', async (request) => {
    let thrown = ''
    try {
      void request.auth
    } catch (err) {
      thrown = (err as Error).message
    }
    return { auth: peekAuth(request), thrown }
  })
  await app.register(
    async (area) => {
      area.addHook('onRequest', area.requireAuth({ roles: ['admin'] }))
      area.get('/reports', async (request) => ({ by: request.auth.subject }))
    },
    { prefix: '/area' },
  )
  t.teardown(() => app.close())
  await app.ready()
  return { app, logs }
}


const sign = (claims: Record<string, unknown> = {}, k: SigningKey = key): string => token({ key: k, issuer: issuer.issuer, now: clock.seconds(), claims })
const bearer = (jwt: string): Record<string, string> => ({ authorization: `Bearer ${jwt}` })
const serviceToken = (claims: Record<string, unknown> = {}): string =>
  rawSign({ alg: 'RS256', typ: 'at+jwt', kid: key.kid }, { ...serviceClaims(issuer.issuer, clock.seconds()), ...claims }, key)

t.test('no token: 401 with bare challenges (Bearer, and DPoP: RFC 9449 §7.1)', async (t) => {
  const { app } = await buildApp(t)
  for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearerish abc' }, { authorization: 'DPoPish abc' }]) {
    const res = await app.inject({ method: 'GET', url: '/documents', headers })
    t.equal(res.statusCode, 401, JSON.stringify(headers))
    t.equal(res.headers['www-authenticate'], `${REALM}, DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", realm="${AUDIENCE}"`)
    t.same(res.json(), { error: 'invalid_token', error_description: 'an access token is required' })
  }
  const head = await app.inject({ method: 'HEAD', url: '/documents' })
  t.equal(head.statusCode, 401, 'the automatic HEAD route is protected too')
})

t.test('a valid token: 200 and a typed request.auth', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ method: 'GET', url: '/me', headers: bearer(sign()) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user-alice', client_id: 'web-app', roles: ['admin'], scope: 'openid documents:read' })
  const lower = await app.inject({ method: 'GET', url: '/documents', headers: { authorization: `bearer ${sign()}` } })
  t.equal(lower.statusCode, 200, 'the scheme is case-insensitive')
  t.equal((await app.inject({ method: 'GET', url: '/any', headers: bearer(serviceToken()) })).json().kind, 'service')
})

t.test('a bad token: 401 invalid_token; the reason is logged, never sent', async (t) => {
  const { app, logs } = await buildApp(t)
  const expired = sign({ exp: clock.seconds() - 3600, iat: clock.seconds() - 4000 })
  const res = await app.inject({ method: 'GET', url: '/documents', headers: bearer(expired) })
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], `${REALM}, error="invalid_token", error_description="the access token is invalid"`)
  t.same(res.json(), { error: 'invalid_token', error_description: 'the access token is invalid' })
  t.notMatch(res.body, /expired/)
  t.ok(logs.some((l) => l.reason === 'expired' && l.msg === 'access token rejected'), 'the log says why')

  const reasons: string[] = []
  for (const jwt of [sign({ aud: 'api://elsewhere' }), sign({}, await makeKey('key-1')), sign({ iss: 'https://evil' })]) {
    const r = await app.inject({ method: 'GET', url: '/documents', headers: bearer(jwt) })
    t.equal(r.statusCode, 401)
    t.same(r.json(), { error: 'invalid_token', error_description: 'the access token is invalid' }, 'one answer for every reason')
  }
  for (const l of logs) if (typeof l.reason === 'string') reasons.push(l.reason)
  t.same(reasons, ['expired', 'wrong_audience', 'bad_signature', 'wrong_issuer'])
  t.notOk(JSON.stringify(logs).includes(expired), 'the token itself is not logged')
})

t.test('a malformed header or a token sent twice: 400 invalid_request', async (t) => {
  const { app } = await buildApp(t)
  const jwt = sign()
  const cases: { name: string; url?: string; headers: Record<string, string>; payload?: string }[] = [
    { name: 'Bearer alone', headers: { authorization: 'Bearer' } },
    { name: 'Bearer and a space', headers: { authorization: 'Bearer ' } },
    { name: 'two words', headers: { authorization: `Bearer ${jwt} ${jwt}` } },
    { name: 'bad characters', headers: { authorization: 'Bearer a"b' } },
    { name: 'header and query', url: `/documents?access_token=${jwt}`, headers: bearer(jwt) },
    { name: 'query only', url: `/documents?access_token=${jwt}`, headers: {} },
  ]
  // RFC 6750 §2.1: "Bearer" 1*SP b64token: more than one space is still one credential.
  t.equal((await app.inject({ method: 'GET', url: '/documents', headers: { authorization: `Bearer  ${jwt}` } })).statusCode, 200, 'two spaces')
  for (const c of cases) {
    const res = await app.inject({ method: 'GET', url: c.url ?? '/documents', headers: c.headers })
    t.equal(res.statusCode, 400, c.name)
    t.equal(res.json().error, 'invalid_request', c.name)
    t.match(res.headers['www-authenticate'], /^Bearer realm="api:\/\/resource", error="invalid_request", error_description="[^"]+"$/, c.name)
  }
  const writer = sign({ scope: 'documents:write' })
  const form = await app.inject({
    method: 'POST',
    url: '/documents',
    headers: { ...bearer(writer), 'content-type': 'application/x-www-form-urlencoded' },
    payload: `title=x&access_token=${writer}`,
  })
  t.equal(form.statusCode, 400, 'header and form body')
  t.equal(form.json().error, 'invalid_request')
  const ok = await app.inject({
    method: 'POST',
    url: '/documents',
    headers: { ...bearer(writer), 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'title=x',
  })
  t.equal(ok.statusCode, 201)
})

t.test('a missing scope: 403 insufficient_scope naming the scope', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ method: 'POST', url: '/documents', headers: bearer(sign()), payload: {} })
  t.equal(res.statusCode, 403)
  t.equal(
    res.headers['www-authenticate'],
    `${REALM}, error="insufficient_scope", error_description="the access token lacks the required scope", scope="documents:write"`,
  )
  t.same(res.json(), { error: 'insufficient_scope', error_description: 'the access token lacks the required scope' })
})

t.test('acr (RFC 9470): a token without an accepted acr is 401 insufficient_user_authentication naming acr_values', async (t) => {
  const { app } = await buildApp(t)
  for (const [name, claims] of [
    ['no acr', { scope: 'documents:read' }],
    ['a weaker acr', { scope: 'documents:read', acr: 'urn:gatehouse:acr:password' }],
    ['a non-string acr', { scope: 'documents:read', acr: [MFA] }],
  ] as const) {
    const res = await app.inject({ method: 'GET', url: '/strong', headers: bearer(sign(claims)) })
    t.equal(res.statusCode, 401, name)
    t.equal(
      res.headers['www-authenticate'],
      `${REALM}, error="insufficient_user_authentication", error_description="a stronger authentication of the user is required", acr_values="${MFA} ${PHISHING_RESISTANT}"`,
      `${name}: the challenge names the acceptable acr values, in order`,
    )
    t.same(res.json(), { error: 'insufficient_user_authentication', error_description: 'a stronger authentication of the user is required' })
  }
  for (const acr of [MFA, PHISHING_RESISTANT]) {
    const ok = await app.inject({ method: 'GET', url: '/strong', headers: bearer(sign({ scope: 'documents:read', acr })) })
    t.equal(ok.statusCode, 200, acr)
    t.same(ok.json(), { acr })
  }
  const scopeFirst = await app.inject({ method: 'GET', url: '/strong', headers: bearer(sign({ scope: 'openid', acr: MFA })) })
  t.equal(scopeFirst.statusCode, 403, 'the scope is checked first')
  t.throws(() => compileRequirement({ acr: 'two values' }), /invalid acr/, 'an acr with a space is refused when the route is registered')
  t.throws(() => compileRequirement({ acr: [] }), /acr names no value/)
})

t.test('a missing role: 403', async (t) => {
  const { app } = await buildApp(t)
  t.equal((await app.inject({ method: 'GET', url: '/admin', headers: bearer(sign()) })).statusCode, 200)
  const res = await app.inject({ method: 'GET', url: '/admin', headers: bearer(sign({ roles: ['reader'] })) })
  t.equal(res.statusCode, 403)
  t.same(res.json(), { error: 'access_denied', error_description: 'the access token lacks a required role' })
  t.equal(res.headers['www-authenticate'], undefined)
  const none = await app.inject({ method: 'GET', url: '/admin', headers: bearer(serviceToken()) })
  t.equal(none.statusCode, 403, 'a service token has no roles')
})

t.test('service tokens and user tokens', async (t) => {
  const { app } = await buildApp(t)
  const svc = await app.inject({ method: 'GET', url: '/internal', headers: bearer(serviceToken()) })
  t.equal(svc.statusCode, 200)
  t.same(svc.json(), { caller: 'billing' })
  const user = await app.inject({ method: 'GET', url: '/internal', headers: bearer(sign({ scope: 'internal:read' })) })
  t.equal(user.statusCode, 403, 'a user token, even with the scope')
  t.equal(user.json().error, 'access_denied')
  const noScope = await app.inject({ method: 'GET', url: '/internal', headers: bearer(serviceToken({ scope: 'documents:read' })) })
  t.equal(noScope.statusCode, 403)
  t.equal(noScope.json().error, 'insufficient_scope')
  const me = await app.inject({ method: 'GET', url: '/me', headers: bearer(serviceToken()) })
  t.equal(me.statusCode, 403, '/me wants a user')
})

t.test('guard functions', async (t) => {
  const { app } = await buildApp(t)
  t.equal((await app.inject({ method: 'GET', url: '/guarded', headers: bearer(sign()) })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/guarded', headers: bearer(sign({ sub: 'user-bob' })) })).statusCode, 403)
  t.equal((await app.inject({ method: 'GET', url: '/both', headers: bearer(sign({ roles: ['editor'] })) })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/both', headers: bearer(sign()) })).statusCode, 403)
})

t.test('requireAuth() protects a whole encapsulated context', async (t) => {
  const { app } = await buildApp(t)
  t.equal((await app.inject({ method: 'GET', url: '/area/reports' })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/area/reports', headers: bearer(sign({ roles: [] })) })).statusCode, 403)
  const ok = await app.inject({ method: 'GET', url: '/area/reports', headers: bearer(sign()) })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { by: 'user-alice' })
})

t.test('routes without config.auth are untouched; request.auth throws there', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ method: 'GET', url: '/open' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().auth, null)
  t.match(res.json().thrown, /without an auth requirement/)
})

t.test('no key obtainable: 503 temporarily_unavailable, never a 500 or a silent 401', async (t) => {
  const down = await startFakeIssuer({ keys: [key] })
  const base = down.issuer
  await down.close()
  const logs: Record<string, unknown>[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) } } })
  await app.register(gatehouseAuth, { issuer: base, audience: AUDIENCE, clock: clock.now })
  app.get('/documents', { config: { auth: { scopes: ['documents:read'] } } }, async () => ({}))
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/documents', headers: bearer(token({ key, issuer: base, now: clock.seconds() })) })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { error: 'temporarily_unavailable', error_description: 'the access token cannot be checked right now' })
  t.equal(app.verifier.isReady(), false)
  t.ok(logs.some((l) => l.level === 40 && l.reason === 'jwks_unavailable'))
})

t.test('no header value yields a 5xx', async (t) => {
  const { app } = await buildApp(t)
  const jwt = sign()
  const values = [
    'Bearer ',
    'Bearer ===',
    'Bearer a.b.c',
    'Bearer ....',
    `Bearer ${jwt.replace(/\./g, '')}`,
    `Bearer ${jwt}.${jwt}`,
    `Bearer ${'A'.repeat(9000)}`,
    `Bearer ${Buffer.from('{"alg":"RS256"}').toString('base64url')}.e30.e30`,
    `Bearer ${Buffer.from('[]').toString('base64url')}.${Buffer.from('[]').toString('base64url')}.AA`,
    `Bearer ${Buffer.from('{"alg":"RS256","kid":{"x":1}}').toString('base64url')}.e30.AA`,
    `Bearer ${Buffer.from('{"alg":"RS256","typ":"at+jwt","kid":"key-1"}').toString('base64url')}.bm90IGpzb24.AA`,
    'Bearer \u00e9',
    'bearer\tabc',
  ]
  for (const authorization of values) {
    const res = await app.inject({ method: 'GET', url: '/documents', headers: { authorization } })
    t.ok(res.statusCode === 400 || res.statusCode === 401, `${authorization.slice(0, 40)} -> ${res.statusCode}`)
    t.type(res.json().error, 'string')
  }
})

t.test('the plugin closes the verifier it owns', async (t) => {
  const { app } = await buildApp(t)
  await app.inject({ method: 'GET', url: '/documents', headers: bearer(sign()) })
  t.equal(app.verifier.isReady(), true)
  await app.close()
  t.pass('closed without hanging')
})
