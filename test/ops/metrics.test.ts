/**
 * Prometheus metrics of both services (issue 6, DESIGN §9), scraped over HTTP from the built
 * services the way Prometheus does: request durations by route and status, the domain counters,
 * the verifier's JWKS fetches and failures, and the default process metrics. Each counter is shown
 * to move by what should move it, from a scrape before to a scrape after.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { freePort, startRedis, startService, AUTH_SCRIPT, RESOURCE_SCRIPT, eventually, getJson, postToken } from '@gatehouse/test-harness'
import { metric, scrape } from './helpers.js'

t.test('metrics move on both services', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const authPort = await freePort()
  const issuer = `http://127.0.0.1:${authPort}`

  // The resource service starts before the auth service exists: its JWKS fetches fail.
  const resource = await startService({ script: RESOURCE_SCRIPT, port: await freePort(), env: { ISSUER: issuer, REDIS_URL: redis.url, LOG_LEVEL: 'warn' } })
  t.teardown(() => resource.stop())
  const failing = await eventually('a failed JWKS fetch to be counted', () => scrape(resource.url), (m) => metric(m, 'gatehouse_verifier_jwks_fetch_failures_total') > 0)
  t.ok(metric(failing, 'gatehouse_verifier_jwks_fetches_total', { outcome: 'failed' }) > 0, 'resource: failed JWKS fetches counted')
  t.equal((await getJson(`${resource.url}/readyz`)).status, 503, 'and the resource is not ready without keys')

  const auth = await startService({
    script: AUTH_SCRIPT,
    port: authPort,
    // A small login limit, without the slowing delay, so a lockout is quick to reach.
    env: { ISSUER: issuer, REDIS_URL: redis.url, COOKIE_SECRET: randomBytes(32).toString('base64url'), LOG_LEVEL: 'warn', LOGIN_MAX_ATTEMPTS: '3', LOGIN_DELAY_MS: '0' },
    readyPath: '/readyz',
  })
  t.teardown(() => auth.stop())
  await eventually('the resource to load the keys', () => getJson(`${resource.url}/readyz`), (r) => r.status === 200, 15_000)

  const a0 = await scrape(auth.url)
  const r0 = await scrape(resource.url)
  t.ok(metric(r0, 'gatehouse_verifier_jwks_fetches_total', { outcome: 'updated' }) >= 1, 'resource: a successful JWKS fetch counted')

  // Drive every counter.
  const login = await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.status, 200)
  // (before the reuse below revokes this login's family, and with it its access tokens)
  t.equal((await getJson(`${resource.url}/me`, login.body.access_token as string)).status, 200)
  t.equal((await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'wrong' })).status, 400)
  for (let i = 0; i < 3; i++) t.equal((await postToken(issuer, { grant_type: 'password', username: 'mallory', password: 'guess' })).status, 400)
  t.equal((await postToken(issuer, { grant_type: 'password', username: 'mallory', password: 'guess' })).body.error, 'invalid_grant', 'locked out, with the same generic error')
  t.equal((await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' }, 'Basic ' + Buffer.from('cli:nope').toString('base64'))).status, 401)
  const rt0 = login.body.refresh_token as string
  const r1 = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: rt0 })
  const r2 = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: r1.body.refresh_token as string })
  t.equal(r2.status, 200)
  t.equal((await postToken(issuer, { grant_type: 'refresh_token', refresh_token: rt0 })).body.error, 'invalid_grant', 'reuse')
  const cc = await postToken(issuer, { grant_type: 'client_credentials', scope: 'internal:read' }, 'Basic ' + Buffer.from('reporting-service:reporting-secret').toString('base64'))
  t.equal(cc.status, 200)
  t.equal((await getJson(`${resource.url}/me`, 'not.a.token')).status, 401)

  // The store goes away: the next refresh is a 503, counted as a store error.
  const spare = await postToken(issuer, { grant_type: 'password', username: 'bob', password: 'bob-password' })
  await redis.stop()
  const down = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: spare.body.refresh_token as string })
  t.equal(down.status, 503)
  t.equal(down.body.error, 'temporarily_unavailable')

  const a1 = await scrape(auth.url)
  const r1m = await scrape(resource.url)
  const moved = (m0: Map<string, number>, m1: Map<string, number>, name: string, labels: Record<string, string> = {}) => metric(m1, name, labels) - metric(m0, name, labels)

  t.equal(moved(a0, a1, 'gatehouse_tokens_issued_total', { grant_type: 'password' }), 2, 'tokens issued, password grant')
  t.equal(moved(a0, a1, 'gatehouse_tokens_issued_total', { grant_type: 'refresh_token' }), 2, 'tokens issued, refresh_token grant')
  t.equal(moved(a0, a1, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials' }), 1, 'tokens issued, client_credentials grant')
  t.equal(moved(a0, a1, 'gatehouse_refresh_rotations_total', { outcome: 'rotated' }), 2, 'refresh rotations')
  t.equal(moved(a0, a1, 'gatehouse_refresh_rotations_total', { outcome: 'reused' }), 1, 'a rotation attempt that was reuse')
  t.equal(moved(a0, a1, 'gatehouse_refresh_reuse_detected_total'), 1, 'reuse detections')
  t.equal(moved(a0, a1, 'gatehouse_login_failures_total', { reason: 'bad_credentials' }), 4, 'login failures')
  t.equal(moved(a0, a1, 'gatehouse_login_lockouts_total', { scope: 'user' }), 1, 'login lockouts')
  t.equal(moved(a0, a1, 'gatehouse_client_auth_failures_total'), 1, 'client authentication failures')
  t.equal(moved(a0, a1, 'gatehouse_store_errors_total'), 1, 'store errors')
  t.equal(moved(a0, a1, 'http_request_duration_seconds_count', { method: 'POST', route: '/token', status_code: '200' }), 5, 'auth: request durations by route and status')
  t.equal(moved(a0, a1, 'http_request_duration_seconds_count', { route: '/token', status_code: '503' }), 1, 'auth: the 503 has its own series')
  t.equal(moved(a0, a1, 'http_request_duration_seconds_count', { route: '/token', status_code: '401' }), 1)

  t.equal(moved(r0, r1m, 'http_request_duration_seconds_count', { method: 'GET', route: '/me', status_code: '200' }), 1, 'resource: request durations by route and status')
  t.equal(moved(r0, r1m, 'http_request_duration_seconds_count', { route: '/me', status_code: '401' }), 1)
  t.equal(moved(r0, r1m, 'gatehouse_verifier_token_verifications_total'), 1, 'resource: verified tokens')
  t.ok(moved(r0, r1m, 'gatehouse_verifier_token_rejections_total') >= 1, 'resource: rejected tokens')

  for (const [name, m] of [['auth', a1], ['resource', r1m]] as const) {
    t.ok(metric(m, 'process_cpu_user_seconds_total') > 0, `${name}: default process metrics`)
    t.ok(metric(m, 'nodejs_heap_size_used_bytes') > 0, `${name}: default Node.js metrics`)
    t.ok(metric(m, 'http_request_duration_seconds_bucket', { le: '+Inf' }) > 0, `${name}: histogram buckets`)
  }
})
