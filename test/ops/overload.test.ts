import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { AUDIENCE, eventually, startFakeIssuer } from '@gatehouse/test-harness'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '../../services/resource/src/index.js'
import { basic, form, makeApp } from '../../services/auth/test/helpers.js'

/**
 * Load shedding (issue 18; service-kit overload.ts): past a limit, both services answer at once
 * with 503 and Retry-After in their own error format, and never shed health, readiness or
 * metrics. The heap limit is the lever here, because it is exact: 1 MiB is always exceeded by a
 * live process, the default never by a test. (The event-loop limit is the same path with
 * another reading; what it costs under a real overload is the benchmark's business.)
 */

const auth = await startFakeIssuer()
t.teardown(() => auth.close())

async function resource(t: Test, env: Record<string, string>): Promise<FastifyInstance> {
  const app = buildResource(loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE, ...env }), { logStream: false })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** Asks until the sampler (every 100 ms, twice in a row) has seen the heap over the limit; bounded. */
async function shedding(app: FastifyInstance, request: () => Promise<{ statusCode: number }>): Promise<void> {
  await eventually('the service sheds', request, (res) => res.statusCode === 503, 5000, 20)
  t.ok(app)
}

t.test('the auth service sheds /token with 503, RFC 6749 JSON and Retry-After, but never health or metrics', async (t) => {
  const { app } = await makeApp({ OVERLOAD_MAX_HEAP_MB: '1', OVERLOAD_RETRY_AFTER: '3' })
  t.teardown(() => app.close())
  const tokenRequest = () => app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }) })
  await shedding(app, tokenRequest)
  const res = await tokenRequest()
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '3')
  t.equal(res.json().error, 'temporarily_unavailable')
  t.notMatch(res.body, /stack|FST_UNDER_PRESSURE/)
  for (const url of ['/healthz', '/metrics']) t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} is never shed`)
  t.not((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, '/readyz answers from its own checks, not the shedding')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gatehouse_overload_shed_total\{reason="heapUsedBytes"\} [1-9]/)
})

t.test('under the limits nothing is shed', async (t) => {
  const { app } = await makeApp({ OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '60000', OVERLOAD_MAX_HEAP_MB: '1048576' })
  t.teardown(() => app.close())
  // Past several samples of the sampler, /token still answers.
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    const res = await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }) })
    t.equal(res.statusCode, 200)
  }
})

t.test('the resource service sheds its API with 503 and Retry-After before checking any token', async (t) => {
  const app = await resource(t, { OVERLOAD_MAX_HEAP_MB: '1' })
  const api = () => app.inject({ method: 'GET', url: '/documents', headers: { authorization: `Bearer ${auth.userToken()}` } })
  await shedding(app, api)
  const res = await api()
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '1', 'the default Retry-After')
  t.equal(res.json().error, 'temporarily_unavailable')
  // No token at all: still 503, not 401 (shed before the verifier runs, so it costs no crypto).
  t.equal((await app.inject({ method: 'GET', url: '/documents' })).statusCode, 503)
  for (const url of ['/healthz', '/metrics']) t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} is never shed`)
})

t.test('OVERLOAD_* are read, checked and can turn shedding off', async (t) => {
  const config = loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE, OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_HEAP_MB: '0' })
  t.same(config.overload, { maxEventLoopDelayMs: 0, maxHeapUsedMb: 0, retryAfter: 1 })
  t.throws(() => loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE, OVERLOAD_RETRY_AFTER: '0' }), /OVERLOAD_RETRY_AFTER/)
  t.throws(() => loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE, OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: 'soon' }), /OVERLOAD_MAX_EVENT_LOOP_DELAY_MS/)
  const off = await resource(t, { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_HEAP_MB: '0' })
  t.notOk('isUnderPressure' in off, 'nothing registered when both limits are off')
  t.notOk('isUnderPressure' in (await resource(t, {})), 'off by default outside production')
  const production = loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE, NODE_ENV: 'production' }).overload!
  t.equal(production.maxEventLoopDelayMs, 100, 'on by default in production')
  t.ok(production.maxHeapUsedMb > 0)
})
