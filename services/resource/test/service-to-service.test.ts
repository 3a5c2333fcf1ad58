import { TokenClientError, createTokenClient, type TokenClient } from '@gatehouse/token-client'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { buildApp, loadConfig } from '../src/index.js'
import { AUDIENCE, startFakeIssuer } from '@gatehouse/test-harness'

/**
 * DESIGN §1 flow 6: a backend service gets a client_credentials token with
 * the token client and calls the resource service's /internal, which
 * validates it with the verifier. Real HTTP between all three.
 */

const auth = await startFakeIssuer()
auth.clients.set('reports', { secret: 's3cret', scope: 'internal:read' })
auth.clients.set('nosy', { secret: 'pw', scope: 'documents:read' })

const resource = buildApp(loadConfig({ ISSUER: auth.issuer, AUDIENCE }), { logStream: false })
await resource.listen({ host: '127.0.0.1', port: 0 })
const resourceAddr = resource.server.address()
const resourceUrl = `http://127.0.0.1:${typeof resourceAddr === 'object' && resourceAddr ? resourceAddr.port : 0}`

t.teardown(async () => {
  await resource.close()
  await auth.close()
})

/** The calling service: one route that needs data from the resource's internal API. */
async function caller(getToken: TokenClient): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.get('/report', async (_request, reply) => {
    let token: string
    try {
      token = await getToken()
    } catch (err) {
      const code = err instanceof TokenClientError ? err.code : 'unknown'
      return reply.code(502).send({ error: 'upstream_auth_failed', code })
    }
    const res = await fetch(`${resourceUrl}/internal`, { headers: { authorization: `Bearer ${token}` } })
    return reply.code(res.status === 200 ? 200 : 502).send({ status: res.status, body: await res.json() })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return app
}

t.test('a service calls /internal with a cached client_credentials token', async (t) => {
  const getToken = createTokenClient({
    issuer: auth.issuer,
    clientId: 'reports',
    credentials: { type: 'client_secret_basic', secret: 's3cret' },
    scope: 'internal:read',
    audience: AUDIENCE,
  })
  const app = await caller(getToken)
  const tokensBefore = auth.counts.token
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'GET', url: '/report' })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { status: 200, body: { service: 'reports', documents: 0 } })
  }
  t.equal(auth.counts.token - tokensBefore, 1, 'one token for three calls')
  const concurrent = await Promise.all(Array.from({ length: 10 }, () => app.inject({ method: 'GET', url: '/report' })))
  t.ok(concurrent.every((r) => r.statusCode === 200))
  t.equal(auth.counts.token - tokensBefore, 1)
})

t.test('a client without internal:read is refused by the resource (403)', async (t) => {
  const app = await caller(createTokenClient({ tokenEndpoint: auth.tokenEndpoint, clientId: 'nosy', credentials: { type: 'client_secret_basic', secret: 'pw' } }))
  const res = await app.inject({ method: 'GET', url: '/report' })
  t.equal(res.statusCode, 502)
  t.same(res.json().body, { error: 'insufficient_scope', error_description: 'the access token lacks the required scope' })
  t.equal(res.json().status, 403)
})

t.test('a wrong secret fails at the token endpoint with invalid_client, and is not retried', async (t) => {
  const before = auth.counts.token
  const app = await caller(createTokenClient({ tokenEndpoint: auth.tokenEndpoint, clientId: 'reports', credentials: { type: 'client_secret_basic', secret: 'nope' } }))
  const res = await app.inject({ method: 'GET', url: '/report' })
  t.equal(res.statusCode, 502)
  t.same(res.json(), { error: 'upstream_auth_failed', code: 'invalid_client' })
  t.equal(auth.counts.token - before, 1)
})
