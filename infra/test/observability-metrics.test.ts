/**
 * The dashboard and the alerting rules of infra/observability/ read only metrics the services
 * export (issue 19): both built services are started as processes (Redis for revocations, load
 * shedding configured so its counter is registered), driven through the flows that create the
 * labelled series (logins, a lockout, refreshes and a reuse, client credentials, verified and
 * refused tokens, readiness), and scraped at /metrics like Prometheus does. Every metric name of
 * every dashboard query, variable and alert expression must be one of theirs, and every label a
 * selector filters on must appear on that metric (the target labels namespace, job and instance
 * aside: Prometheus adds them). A misspelt name or label in a panel or an alert fails here.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { AUTH_SCRIPT, RESOURCE_SCRIPT, eventually, freePort, getJson, postToken, startRedis, startService } from '@gatehouse/test-harness'
import { dashboardQueries, exportsOf, mergeExports, promqlMetricNames, promqlSelectors, readAlertGroups, readDashboard, type Exports } from './observability.js'

/** Labels the scrape gives every series (kubernetes_sd relabelling, static configs): never exported by a service. */
const TARGET_LABELS = new Set(['namespace', 'job', 'instance'])

/** What an expression reads that the services do not export: unknown names, unknown labels. */
export function missing(expr: string, exported: Exports): string[] {
  const out = promqlMetricNames(expr)
    .filter((n) => !exported.names.has(n))
    .map((n) => `metric ${n}`)
  for (const s of promqlSelectors(expr)) {
    if (!exported.names.has(s.metric)) continue
    const have = exported.labels.get(s.metric) ?? new Set<string>()
    for (const l of s.labels) if (!TARGET_LABELS.has(l) && !have.has(l)) out.push(`label ${l} on ${s.metric}`)
  }
  return out
}

async function metricsText(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`)
  if (res.status !== 200) throw new Error(`${baseUrl}/metrics answered ${res.status}`)
  return await res.text()
}

t.test('every metric the dashboard and the alerts read is exported by a service', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const authPort = await freePort()
  const issuer = `http://127.0.0.1:${authPort}`
  // A high event-loop limit: the shedding is on (its counter registered) and never sheds here.
  const overload = { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '60000' }
  const auth = await startService({
    script: AUTH_SCRIPT,
    port: authPort,
    env: { ISSUER: issuer, REDIS_URL: redis.url, COOKIE_SECRET: randomBytes(32).toString('base64url'), LOG_LEVEL: 'warn', LOGIN_MAX_ATTEMPTS: '2', LOGIN_DELAY_MS: '0', ...overload },
    readyPath: '/readyz',
  })
  t.teardown(() => auth.stop())
  const resource = await startService({ script: RESOURCE_SCRIPT, port: await freePort(), env: { ISSUER: issuer, REDIS_URL: redis.url, LOG_LEVEL: 'warn', ...overload }, readyPath: '/readyz' })
  t.teardown(() => resource.stop())
  await eventually('the resource to subscribe to revocations', () => getJson(`${resource.url}/readyz`), (r) => (r.body as { checks?: { revocations?: string } }).checks?.revocations === 'live', 15_000)

  // The flows behind the labelled series.
  const login = await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.status, 200, 'a password login')
  t.equal((await getJson(`${resource.url}/me`, login.body.access_token as string)).status, 200, 'a verified token')
  t.equal((await getJson(`${resource.url}/me`, 'not.a.token')).status, 401, 'a refused one')
  for (let i = 0; i < 3; i++) await postToken(issuer, { grant_type: 'password', username: 'mallory', password: 'guess' })
  const r1 = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token as string })
  t.equal(r1.status, 200, 'a rotation')
  // (a second rotation, so the first token is no longer within the retry grace of its successor)
  t.equal((await postToken(issuer, { grant_type: 'refresh_token', refresh_token: r1.body.refresh_token as string })).status, 200)
  t.equal((await postToken(issuer, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token as string })).body.error, 'invalid_grant', 'a reuse')
  t.equal((await postToken(issuer, { grant_type: 'client_credentials', scope: 'internal:read' }, 'Basic ' + Buffer.from('reporting-service:reporting-secret').toString('base64'))).status, 200)
  for (const base of [auth.url, resource.url]) t.equal((await getJson(`${base}/readyz`)).status, 200, `${base}/readyz`)

  const authText = await metricsText(auth.url)
  const resourceText = await metricsText(resource.url)
  // GatehouseReadinessFlapping and the "Readiness probes" panel read the probes' own series.
  for (const [name, text] of [['auth', authText], ['resource', resourceText]] as const) {
    t.match(text, /^http_request_duration_seconds_count\{[^}]*route="\/readyz"[^}]*status_code="200"[^}]*\} [1-9]/m, `${name}: /readyz answers are counted by route and status`)
  }
  const authExports = exportsOf(authText)
  const resourceExports = exportsOf(resourceText)
  const exported = mergeExports(authExports, resourceExports)
  t.ok(authExports.names.has('gatehouse_overload_shed_total') && resourceExports.names.has('gatehouse_overload_shed_total'), 'both services register the load-shedding counter')
  t.ok(authExports.names.has('gatehouse_signing_keys'), 'the auth service exports the signing-key gauges')
  t.ok(resourceExports.names.has('gatehouse_verifier_revocation_feed_connected'), 'the resource service exports the verifier metrics')
  t.ok(exported.labels.get('http_request_duration_seconds_count')?.has('route'), 'request durations carry their route')

  t.test('the checker catches what it is for', async (t) => {
    t.same(missing('sum(rate(gatehouse_tokens_issued_total[5m]))', exported), [], 'a real name passes')
    t.same(missing('sum(rate(gatehouse_tokens_issued[5m]))', exported), ['metric gatehouse_tokens_issued'], 'a misspelt name is caught')
    t.same(missing('rate(http_request_duration_seconds_bucket{job="x"}[5m])', exported), [], 'histogram series and target labels pass')
    t.same(missing('gatehouse_signing_keys{status="next"}', exported), ['label status on gatehouse_signing_keys'], 'a misspelt label is caught')
  })

  t.test('the dashboard', async (t) => {
    const queries = dashboardQueries(await readDashboard())
    t.ok(queries.length >= 40, `${queries.length} queries`)
    const names = new Set<string>()
    for (const q of queries) {
      for (const n of promqlMetricNames(q.expr)) names.add(n)
      t.same(missing(q.expr, exported), [], `${q.where}: ${q.expr}`)
    }
    t.ok(names.size >= 35, `${names.size} metrics read`)
  })

  t.test('the alerting rules', async (t) => {
    for (const group of await readAlertGroups()) {
      for (const rule of group.rules) {
        t.ok(promqlMetricNames(rule.expr).length > 0, `${rule.alert} reads a metric`)
        t.same(missing(rule.expr, exported), [], `${rule.alert}: ${promqlMetricNames(rule.expr).join(', ')}`)
      }
    }
  })
})
