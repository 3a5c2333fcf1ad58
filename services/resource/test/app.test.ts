import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, loadConfig } from '../src/index.js'
import { AUDIENCE, dpopProof, makeDpopKey, startFakeIssuer } from '@gatehouse/test-harness'

/** The resource service's routes, DESIGN §4, through app.inject. */

const auth = await startFakeIssuer()
t.teardown(() => auth.close())

async function app(t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance; logs: string[] }> {
  const logs: string[] = []
  const config = loadConfig({ ISSUER: auth.issuer, AUDIENCE, ...env })
  const instance = buildApp(config, { logStream: { write: (line) => void logs.push(line) } })
  t.teardown(() => instance.close())
  await instance.ready()
  return { app: instance, logs }
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

t.test('health, readiness and metrics need no token; readiness waits for the keys', async (t) => {
  let release!: () => void
  auth.holdJwks = new Promise<void>((resolve) => (release = resolve))
  t.teardown(() => {
    auth.holdJwks = undefined
  })
  const { app: a } = await app(t)
  t.equal((await a.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  const notReady = await a.inject({ method: 'GET', url: '/readyz' })
  t.equal(notReady.statusCode, 503)
  t.same(notReady.json(), { status: 'unavailable', checks: { keys: 'missing', shutdown: 'ok', revocations: 'disabled' } })
  release()
  await a.verifier.ready()
  const ready = await a.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().status, 'ready')

  await a.inject({ method: 'GET', url: '/documents', headers: bearer(auth.userToken()) })
  const metrics = await a.inject({ method: 'GET', url: '/metrics' })
  t.equal(metrics.statusCode, 200)
  t.match(metrics.headers['content-type'], /^text\/plain/)
  t.match(metrics.body, /http_request_duration_seconds_count\{method="GET",route="\/documents",status_code="200"\} 1/)
  t.match(metrics.body, /gatehouse_verifier_jwks_fetches_total\{outcome="updated"\} 1/)
  t.match(metrics.body, /gatehouse_verifier_jwks_cache_age_seconds/)
  t.match(metrics.body, /process_cpu_user_seconds_total/)
})

t.test('GET /me: any valid user token', async (t) => {
  const { app: a } = await app(t)
  const res = await a.inject({ method: 'GET', url: '/me', headers: bearer(auth.userToken()) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user-alice', roles: ['admin'], scope: 'openid documents:read documents:write', client_id: 'web-app' })
  t.equal((await a.inject({ method: 'GET', url: '/me' })).statusCode, 401)
  t.equal((await a.inject({ method: 'GET', url: '/me', headers: bearer(auth.serviceToken()) })).statusCode, 403, 'a service token is no user')
})

t.test('GET /documents: scope documents:read', async (t) => {
  const { app: a } = await app(t)
  const ok = await a.inject({ method: 'GET', url: '/documents', headers: bearer(auth.userToken()) })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { documents: [] })
  const none = await a.inject({ method: 'GET', url: '/documents' })
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], `Bearer realm="${AUDIENCE}", DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", realm="${AUDIENCE}"`)
  const scoped = await a.inject({ method: 'GET', url: '/documents', headers: bearer(auth.userToken({ scope: 'openid' })) })
  t.equal(scoped.statusCode, 403)
  t.match(scoped.headers['www-authenticate'], /error="insufficient_scope".*scope="documents:read"/)
  const bad = await a.inject({ method: 'GET', url: '/documents', headers: bearer(auth.userToken({ aud: 'api://other' })) })
  t.equal(bad.statusCode, 401)
  t.match(bad.headers['www-authenticate'], /error="invalid_token"/)
  t.same(bad.json(), { error: 'invalid_token', error_description: 'the access token is invalid' })
})

t.test('POST /documents: scope documents:write and a validated JSON body', async (t) => {
  const { app: a, logs } = await app(t)
  const writer = bearer(auth.userToken())
  const created = await a.inject({ method: 'POST', url: '/documents', headers: writer, payload: { title: 'Plans', body: 'Secret plans' } })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { title: 'Plans', body: 'Secret plans', owner: 'user-alice', id: String })
  const list = await a.inject({ method: 'GET', url: '/documents', headers: writer })
  t.equal(list.json().documents.length, 1)

  const readOnly = await a.inject({ method: 'POST', url: '/documents', headers: bearer(auth.userToken({ scope: 'documents:read' })), payload: { title: 'x' } })
  t.equal(readOnly.statusCode, 403)
  t.equal(readOnly.json().error, 'insufficient_scope')

  const invalid: unknown[] = [
    {},
    { title: '' },
    { title: 'x'.repeat(201) },
    { title: 42 },
    { title: 'ok', body: 'y'.repeat(10_001) },
    { title: 'ok', body: ['no'] },
    { title: 'ok', extra: true },
    [],
    'just a string',
  ]
  for (const payload of invalid) {
    const res = await a.inject({ method: 'POST', url: '/documents', headers: { ...writer, 'content-type': 'application/json' }, payload: JSON.stringify(payload) })
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 60))
    // One fixed description: the schema validator's own message (schema paths, limits) is logged, never sent.
    t.same(res.json(), { error: 'invalid_request', error_description: 'the request does not match the schema of this endpoint' })
  }
  const logged = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request refused' && l.error === 'invalid_request')
  t.match(logged.at(-1), { status: 400, reason: /must/ }, "the validator's message goes to the log")
  const garbage = await a.inject({ method: 'POST', url: '/documents', headers: { ...writer, 'content-type': 'application/json' }, payload: '{"title":' })
  t.equal(garbage.statusCode, 400)
  t.same(garbage.json(), { error: 'invalid_request', error_description: 'the request body is not valid JSON' })
  const wrongType = await a.inject({ method: 'POST', url: '/documents', headers: { ...writer, 'content-type': 'text/plain' }, payload: 'title=x' })
  t.equal(wrongType.statusCode, 415)
  t.equal(wrongType.json().error, 'invalid_request')
  const huge = await a.inject({ method: 'POST', url: '/documents', headers: writer, payload: { title: 'x', body: 'z'.repeat(200_000) } })
  t.equal(huge.statusCode, 413)
  t.same(huge.json(), { error: 'invalid_request', error_description: 'the request body is too large' })
  const noToken = await a.inject({ method: 'POST', url: '/documents', payload: { title: 'x' } })
  t.equal(noToken.statusCode, 401, 'authentication comes before the body')
  t.equal(created.statusCode, 201)
  t.equal((await a.inject({ method: 'GET', url: '/documents', headers: writer })).json().documents.length, 1, 'nothing else was stored')
})

t.test('GET /admin and below: role admin', async (t) => {
  const { app: a } = await app(t)
  const admin = bearer(auth.userToken())
  const plain = bearer(auth.userToken({ roles: ['reader'] }))
  for (const url of ['/admin', '/admin/', '/admin/stats']) {
    t.equal((await a.inject({ method: 'GET', url, headers: admin })).statusCode, 200, url)
    t.equal((await a.inject({ method: 'GET', url, headers: plain })).statusCode, 403, url)
    t.equal((await a.inject({ method: 'GET', url })).statusCode, 401, url)
  }
  t.equal((await a.inject({ method: 'GET', url: '/admin/nothing-here', headers: plain })).statusCode, 403, 'unknown paths below /admin are guarded too')
  t.equal((await a.inject({ method: 'GET', url: '/admin/nothing-here', headers: admin })).statusCode, 404)
})

t.test('GET /internal and below: a service token with internal:read; a user token never', async (t) => {
  const { app: a } = await app(t)
  const service = bearer(auth.serviceToken())
  for (const url of ['/internal', '/internal/documents']) {
    t.equal((await a.inject({ method: 'GET', url, headers: service })).statusCode, 200, url)
  }
  t.same((await a.inject({ method: 'GET', url: '/internal', headers: service })).json(), { service: 'billing', documents: 0 })
  const user = await a.inject({ method: 'GET', url: '/internal', headers: bearer(auth.userToken({ scope: 'internal:read' })) })
  t.equal(user.statusCode, 403, 'a user token, even with internal:read')
  const rolelessUser = await a.inject({
    method: 'GET',
    url: '/internal',
    headers: bearer(auth.userToken({ scope: 'internal:read', roles: undefined, auth_time: undefined, sid: 'family-9' })),
  })
  t.equal(rolelessUser.statusCode, 403, 'a user token without roles is still a user token')
  const noScope = await a.inject({ method: 'GET', url: '/internal', headers: bearer(auth.serviceToken({ scope: 'documents:read' })) })
  t.equal(noScope.statusCode, 403)
  t.equal(noScope.json().error, 'insufficient_scope')
})

t.test('unknown routes: 404 as JSON', async (t) => {
  const { app: a } = await app(t)
  const res = await a.inject({ method: 'GET', url: '/nope?x=1' })
  t.equal(res.statusCode, 404)
  t.same(res.json(), { error: 'not_found', error_description: 'no route for GET /nope' })
})

t.test('logs: request ids, reasons, and no token or authorization header', async (t) => {
  const { app: a, logs } = await app(t)
  const token = auth.userToken()
  const expired = auth.userToken({ exp: Math.floor(Date.now() / 1000) - 3600 })
  const ok = await a.inject({ method: 'GET', url: '/documents', headers: { ...bearer(token), 'x-request-id': 'req-123' } })
  t.equal(ok.headers['x-request-id'], 'req-123')
  const res = await a.inject({ method: 'GET', url: '/documents', headers: bearer(expired) })
  t.equal(res.statusCode, 401)
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  const text = logs.join('')
  t.notOk(text.includes(token.split('.')[2]!), 'no token in the logs')
  t.notOk(text.includes(expired.split('.')[2]!), 'no rejected token in the logs either')
  const parsed = logs.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(parsed.some((l) => l.reqId === 'req-123'))
  t.ok(parsed.some((l) => l.reason === 'expired'), 'the reason is logged')
  t.notMatch(res.body, /expired/, 'and not sent')
})

t.test('no bad request yields a 5xx', async (t) => {
  const { app: a } = await app(t)
  const requests = [
    { method: 'GET', url: '/documents', headers: { authorization: 'Bearer' } },
    { method: 'GET', url: '/documents?access_token=abc', headers: {} },
    { method: 'GET', url: '/documents', headers: { authorization: `Bearer ${'x'.repeat(9000)}` } },
    { method: 'POST', url: '/documents', headers: { authorization: 'Bearer a.b.c', 'content-type': 'application/json' }, payload: '{' },
    { method: 'DELETE', url: '/documents', headers: {} },
    { method: 'GET', url: '/me', headers: { authorization: 'Bearer ..' } },
  ] as const
  for (const r of requests) {
    const res = await a.inject(r)
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${r.method} ${r.url} -> ${res.statusCode}`)
    t.type(res.json().error, 'string')
  }
})

t.test('JWKS_URI skips discovery', async (t) => {
  const { app: a } = await app(t, { JWKS_URI: auth.jwksUri })
  t.equal((await a.inject({ method: 'GET', url: '/me', headers: bearer(auth.userToken()) })).statusCode, 200)
})

t.test('DPoP (RFC 9449): PUBLIC_URL names the htu, proofs are single-use, DPOP_NONCE_SECRET turns on nonces', async (t) => {
  const { app: a } = await app(t, { PUBLIC_URL: 'https://api.example.com/docs', DPOP_NONCE_SECRET: 'resource nonce secret, 16+ bytes' })
  const key = makeDpopKey('ES256')
  const token = auth.userToken({ cnf: { jkt: key.jkt } })
  const now = () => Math.floor(Date.now() / 1000)
  const proof = (htu: string, nonce?: string) => dpopProof({ key, htm: 'GET', htu, iat: now(), accessToken: token, nonce })
  const get = async (p: string) => await a.inject({ method: 'GET', url: '/documents', headers: { authorization: `DPoP ${token}`, dpop: p } })

  const first = await get(proof('https://api.example.com/docs/documents'))
  t.equal(first.statusCode, 401)
  t.equal(first.json().error, 'use_dpop_nonce')
  const nonce = first.headers['dpop-nonce'] as string
  t.ok(nonce, 'DPoP-Nonce sent')
  const p = proof('https://api.example.com/docs/documents', nonce)
  const ok = await get(p)
  t.equal(ok.statusCode, 200, ok.body)
  const again = await get(p)
  t.equal(again.statusCode, 401, 'the same proof again')
  t.match(again.headers['www-authenticate'], /^DPoP algs="[^"]+", realm="[^"]+", error="invalid_dpop_proof"/)
  t.equal((await get(proof('http://localhost/documents', nonce))).statusCode, 401, 'the Host header does not name the htu')
  t.equal((await a.inject({ method: 'GET', url: '/documents', headers: { authorization: `Bearer ${token}` } })).statusCode, 401, 'no downgrade to Bearer')
})
