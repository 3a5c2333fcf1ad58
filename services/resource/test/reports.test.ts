import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { TokenClientError, type AccessToken, type ExchangeRequest, type TokenClient } from '@gatehouse/token-client'
import { buildApp, loadConfig } from '../src/index.js'
import { AUDIENCE, startFakeIssuer } from '@gatehouse/test-harness'

/**
 * `GET /reports/me` (REPORTS_URL): the caller's token exchanged for the reports audience and the
 * reports service's /me answer passed on; each failure mapped to a clear answer. The exchange
 * itself (a stand-in token client) and the reports service (a tiny fastify app on 127.0.0.1) are
 * fakes here; test/e2e/token-exchange.test.ts runs the real chain.
 */

const auth = await startFakeIssuer()
t.teardown(() => auth.close())

const reportsApp = Fastify({ logger: false })
const reportsSeen: string[] = []
reportsApp.get('/me', async (request, reply) => {
  const token = (request.headers.authorization ?? '').replace(/^Bearer /, '')
  reportsSeen.push(token)
  if (token === 'refused-downstream') return reply.code(401).send({ error: 'invalid_token' })
  return { sub: 'user-alice', act: { sub: 'resource-service' }, via: token }
})
await reportsApp.listen({ host: '127.0.0.1', port: 0 })
t.teardown(() => reportsApp.close())
const addr = reportsApp.server.address()
const reportsUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`

const ENV = { ISSUER: auth.issuer, AUDIENCE, REPORTS_URL: reportsUrl, EXCHANGE_CLIENT_ID: 'resource-service', EXCHANGE_CLIENT_SECRET: 's' }

/** A token client whose exchange() answers with `outcome` and records what it was asked. */
function fakeTokens(outcome: () => Promise<AccessToken>): TokenClient & { asked: ExchangeRequest[] } {
  const asked: ExchangeRequest[] = []
  const fn = Object.assign(async () => 'unused', {
    token: async () => await outcome(),
    invalidate: () => {},
    authorizationHeaders: async () => ({ authorization: 'Bearer unused' }),
    rememberDpopNonce: () => {},
    dpopThumbprint: async () => undefined,
    exchange: async (r: ExchangeRequest) => {
      asked.push(r)
      return await outcome()
    },
    asked,
  })
  return fn
}

async function app(t: Test, tokens: TokenClient, env: Record<string, string> = ENV) {
  const instance = buildApp(loadConfig(env), { logStream: false, tokens })
  t.teardown(() => instance.close())
  await instance.ready()
  return instance
}

const issued = (accessToken: string): AccessToken => ({ accessToken, tokenType: 'Bearer', expiresAt: Date.now() + 60_000, scope: 'reports:read' })

t.test("the caller's token is exchanged for the reports audience and B's answer passed on", async (t) => {
  const tokens = fakeTokens(async () => issued('exchanged-1'))
  const a = await app(t, tokens)
  const user = auth.userToken()
  const res = await a.inject({ method: 'GET', url: '/reports/me', headers: { authorization: `Bearer ${user}` } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user-alice', act: { sub: 'resource-service' }, via: 'exchanged-1' })
  t.same(tokens.asked, [{ subjectToken: user, audience: 'api://reports' }])
  t.equal(reportsSeen.at(-1), 'exchanged-1')
  t.equal((await a.inject({ method: 'GET', url: '/reports/me' })).statusCode, 401, 'no token, no call')
  t.equal((await a.inject({ method: 'GET', url: '/reports/me', headers: { authorization: `Bearer ${auth.serviceToken()}` } })).statusCode, 403, 'a service token acts for no user')
  t.equal(tokens.asked.length, 1)
})

t.test('failures: a refused subject is 401 invalid_token, an unreachable issuer 503, anything else 502', async (t) => {
  const cases: [string, () => Promise<AccessToken>, number, string][] = [
    ['subject refused', async () => { throw new TokenClientError('invalid_request', 'HTTP 400', { status: 400 }) }, 401, 'invalid_token'],
    ['issuer down', async () => { throw new TokenClientError('network_error', 'down', { retryable: true }) }, 503, 'temporarily_unavailable'],
    ['target not allowed', async () => { throw new TokenClientError('invalid_target', 'HTTP 400', { status: 400 }) }, 502, 'server_error'],
    ['reports refuses', async () => issued('refused-downstream'), 502, 'server_error'],
  ]
  for (const [what, outcome, status, error] of cases) {
    const a = await app(t, fakeTokens(outcome))
    const res = await a.inject({ method: 'GET', url: '/reports/me', headers: { authorization: `Bearer ${auth.userToken()}` } })
    t.equal(res.statusCode, status, what)
    t.equal(res.json().error, error, what)
    if (status === 401) t.match(res.headers['www-authenticate'], /^Bearer realm="api:\/\/resource", error="invalid_token"/, `${what}: an RFC 6750 challenge`)
  }
  const gone = await app(t, fakeTokens(async () => issued('x')), { ...ENV, REPORTS_URL: 'http://127.0.0.1:1' })
  const res = await gone.inject({ method: 'GET', url: '/reports/me', headers: { authorization: `Bearer ${auth.userToken()}` } })
  t.equal(res.statusCode, 503, 'reports unreachable')
})

t.test('configuration: all or nothing, and no route without it', async (t) => {
  const plain = await app(t, fakeTokens(async () => issued('x')), { ISSUER: auth.issuer, AUDIENCE })
  t.equal((await plain.inject({ method: 'GET', url: '/reports/me', headers: { authorization: `Bearer ${auth.userToken()}` } })).statusCode, 404)
  t.match(loadConfig(ENV).reports, { url: reportsUrl, audience: 'api://reports', clientId: 'resource-service' })
  t.equal(loadConfig({ ...ENV, REPORTS_URL: `${reportsUrl}/`, REPORTS_AUDIENCE: 'api://ledger' }).reports?.url, reportsUrl, 'a trailing slash is dropped')
  t.throws(() => loadConfig({ REPORTS_URL: reportsUrl }), /REPORTS_URL needs EXCHANGE_CLIENT_ID and EXCHANGE_CLIENT_SECRET/)
  t.throws(() => loadConfig({ EXCHANGE_CLIENT_ID: 'x' }), /used only with REPORTS_URL/)
  t.throws(() => loadConfig({ ...ENV, REPORTS_URL: 'ftp://x' }), /REPORTS_URL must use/)
  t.throws(() => loadConfig({ ...ENV, REPORTS_AUDIENCE: 'two words' }), /REPORTS_AUDIENCE/)
})
