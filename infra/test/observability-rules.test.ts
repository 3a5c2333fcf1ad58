/**
 * The alerting rules and the Grafana dashboard of infra/observability/ (issue 19), offline:
 * `promtool check rules` accepts the rule file and `promtool test rules` runs its unit tests
 * (infra/observability/tests/*.yml); every alert is shown covered both ways (made to always fire,
 * some test fails; made never to fire, some test fails); every alert carries a severity, a summary,
 * a description and a runbook_url naming a runbook section of docs/operations.md; the production
 * overlay renders a PrometheusRule with exactly the rule file's groups; the dashboard imports
 * (a datasource variable, sound panels) and promtool parses each of its queries. Whether the
 * metrics they name exist is observability-metrics.test.ts's question.
 */
import t from 'tap'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, parseAllDocuments, stringify } from 'yaml'
import { run } from './run.js'
import {
  alertsFile,
  allPanels,
  dashboardQueries,
  headingAnchor,
  observabilityDir,
  promqlMetricNames,
  promqlSelectors,
  readAlertGroups,
  readDashboard,
  root,
  withoutVariables,
  type RuleGroup,
} from './observability.js'

const testsDir = join(observabilityDir, 'tests')
const RUNBOOK_BASE = 'https://git.example.com/gatehouse/blob/main/docs/operations.md#'

async function promtool(args: string[], cwd = root): Promise<{ code: number | null; out: string }> {
  const r = await run('promtool', args, { cwd, timeoutMs: 60_000 })
  return { code: r.code, out: `${r.stdout}${r.stderr}` }
}

const available = await promtool(['--version'])
if (available.code === null) t.fail(`promtool is not installed (scripts/test.sh installs it: apt-get install prometheus): ${available.out}`)

const groups = await readAlertGroups()
const alerts = groups.flatMap((g) => g.rules)
const testFiles = (await readdir(testsDir)).filter((f) => f.endsWith('.yml')).sort()

t.test('promtool accepts the rule file, and rejects a broken one', async (t) => {
  const ok = await promtool(['check', 'rules', alertsFile])
  t.equal(ok.code, 0, ok.out)
  t.match(ok.out, new RegExp(`SUCCESS: ${alerts.length} rules found`))
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-rules-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const broken = join(dir, 'broken.yml')
  await writeFile(broken, (await readFile(alertsFile, 'utf8')).replace('> 10', '> > 10'))
  t.not((await promtool(['check', 'rules', broken])).code, 0, 'a syntax error in an expression is caught')
})

t.test('the alerts: what the rule file must hold', async (t) => {
  t.same(
    alerts.map((a) => a.alert).sort(),
    [
      'GatehouseHighErrorRate',
      'GatehouseJwksFetchFailing',
      'GatehouseLoadShedding',
      'GatehouseLoginLockoutStorm',
      'GatehouseReadinessFlapping',
      'GatehouseRefreshTokenReuseBurst',
      'GatehouseRevocationFeedDown',
      'GatehouseSigningKeyNoSuccessor',
      'GatehouseStoreErrors',
    ],
    'reuse burst, lockout storm, JWKS failures, revocation feed, signing key without successor, readiness flapping, 5xx, load shedding, store errors',
  )
  const operations = await readFile(join(root, 'docs/operations.md'), 'utf8')
  const headings = new Map<string, string>()
  const lines = operations.split('\n')
  for (const [i, line] of lines.entries()) {
    const h = /^#{2,4} (.+)$/.exec(line)
    if (h) headings.set(headingAnchor(h[1]!), lines.slice(i + 1, lines.findIndex((l, j) => j > i && /^#{2,4} /.test(l))).join('\n'))
  }
  for (const a of alerts) {
    t.match(a.labels?.severity, /^(critical|warning)$/, `${a.alert}: a severity label`)
    t.ok(a.annotations?.summary && a.annotations.description, `${a.alert}: summary and description`)
    const url = a.annotations?.runbook_url ?? ''
    t.ok(url.startsWith(RUNBOOK_BASE), `${a.alert}: runbook_url into docs/operations.md (${url})`)
    const anchor = url.slice(RUNBOOK_BASE.length)
    t.equal(anchor, headingAnchor(a.alert), `${a.alert}: its runbook is the section named after it`)
    const section = headings.get(anchor)
    t.ok(section !== undefined, `${a.alert}: docs/operations.md has the section #${anchor}`)
    t.match(section ?? '', /What it means/, `${a.alert}: the runbook says what it means`)
    t.match(section ?? '', /First checks/, `${a.alert}: ... what to check first`)
    t.match(section ?? '', /Actions/, `${a.alert}: ... and what to do`)
  }
})

t.test('promtool test rules: the unit tests pass', async (t) => {
  t.ok(testFiles.length >= 3, `test files: ${testFiles.join(', ')}`)
  const r = await promtool(['test', 'rules', ...testFiles], testsDir)
  t.equal(r.code, 0, r.out)
  t.notMatch(r.out, /FAILED/)
})

interface UnitTestFile {
  rule_files: string[]
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> } & Record<string, unknown>>
}
const unitTests = await Promise.all(testFiles.map(async (f) => parse(await readFile(join(testsDir, f), 'utf8')) as UnitTestFile))

/**
 * Runs, against a copy of the rule file with `alert`'s expression replaced, the unit tests'
 * expectations about that alert only: those that it must not fire (`quiet`), or that it must.
 * Exit status 0: every one held.
 */
async function expectationsWith(alert: string, expr: string, which: 'quiet' | 'firing'): Promise<{ code: number | null; out: string; count: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-rules-'))
  try {
    const mutated: RuleGroup[] = groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert === alert ? { ...r, expr } : r)) }))
    await writeFile(join(dir, 'alerts.yml'), stringify({ groups: mutated }))
    const tests = unitTests.flatMap((u) =>
      u.tests.flatMap((c) => {
        const kept = (c.alert_rule_test ?? []).filter((a) => a.alertname === alert && ((a.exp_alerts ?? []).length === 0) === (which === 'quiet'))
        return kept.length > 0 ? [{ ...c, alert_rule_test: kept }] : []
      }),
    )
    await writeFile(join(dir, 'test.yml'), stringify({ rule_files: ['alerts.yml'], evaluation_interval: '1m', tests }))
    const count = tests.reduce((n, c) => n + c.alert_rule_test.length, 0)
    return { ...(await promtool(['test', 'rules', 'test.yml'], dir)), count }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

t.test('every alert is tested both ways: when it must fire, and when it must not', async (t) => {
  for (const a of alerts) {
    const [quiet, firing, always, never] = await Promise.all([
      expectationsWith(a.alert, a.expr, 'quiet'),
      expectationsWith(a.alert, a.expr, 'firing'),
      expectationsWith(a.alert, 'vector(1)', 'quiet'),
      expectationsWith(a.alert, 'vector(1) == 0', 'firing'),
    ])
    t.ok(quiet.count > 0 && firing.count > 0, `${a.alert}: ${firing.count} times it must fire, ${quiet.count} it must not`)
    t.equal(quiet.code, 0, `${a.alert}: the expectations hold one by one (${quiet.out.trim().split('\n').pop()})`)
    t.equal(firing.code, 0, `${a.alert}: likewise where it fires`)
    t.not(always.code, 0, `${a.alert} made to fire all the time: a "must not fire" expectation catches it`)
    t.not(never.code, 0, `${a.alert} made never to fire: a "must fire" expectation catches it`)
  }
})

t.test('the production overlay carries the same groups as a PrometheusRule', async (t) => {
  const check = await run(process.execPath, [join(observabilityDir, 'render-prometheus-rule.mjs'), '--check'], { cwd: root })
  t.equal(check.code, 0, `prometheus-rule.yaml is what render-prometheus-rule.mjs makes of alerts.yml: ${check.stderr}`)
  const rendered = await run('kubectl', ['kustomize', join(root, 'infra/k8s/overlays/production')], { cwd: root, timeoutMs: 60_000 })
  if (rendered.code === null) t.fail(`kubectl is not installed: ${rendered.stderr}`)
  t.equal(rendered.code, 0, rendered.stderr)
  const objects = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: { groups?: unknown } })
  const rules = objects.filter((o) => o.kind === 'PrometheusRule')
  t.equal(rules.length, 1, 'one PrometheusRule')
  const rule = rules[0]
  t.equal(rule?.apiVersion, 'monitoring.coreos.com/v1')
  t.equal(rule?.metadata.namespace, 'gatehouse', 'in the Gatehouse namespace')
  t.equal(rule?.metadata.labels?.role, 'alert-rules', 'labelled for a ruleSelector')
  t.same(rule?.spec?.groups, groups, 'its groups are the rule file groups, unchanged')

  // And the check is real: a rule file changed without regenerating is caught.
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-render-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'alerts.yml'), (await readFile(alertsFile, 'utf8')).replace('> 10', '> 20'))
  const stale = await run(process.execPath, [join(observabilityDir, 'render-prometheus-rule.mjs'), '--check', '--rules', join(dir, 'alerts.yml')], { cwd: root })
  t.equal(stale.code, 1, 'a rule file changed without regenerating is caught')
  t.match(stale.stderr, /prometheus-rule\.yaml is out of date/)
})

t.test('the dashboard imports: variables, panels, targets', async (t) => {
  const d = await readDashboard()
  t.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`)
  t.equal(d.uid, 'gatehouse-overview')
  t.notOk((d as unknown as { id?: unknown }).id, 'no database id (Grafana assigns one at import)')
  const vars = new Map(d.templating.list.map((v) => [v.name, v]))
  t.match(vars.get('datasource'), { type: 'datasource', query: 'prometheus' }, 'a Prometheus datasource variable')
  for (const name of ['namespace', 'job', 'instance']) t.match(vars.get(name), { type: 'query', includeAll: true, allValue: '.*', datasource: { uid: '${datasource}' } }, `a ${name} variable (All = any, label absent included)`)

  const panels = allPanels(d)
  const ids = panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  const graphs = panels.filter((p) => p.type !== 'row')
  t.ok(graphs.length >= 30, `${graphs.length} panels`)
  const cells = new Set<string>()
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos
    t.ok(x >= 0 && w > 0 && x + w <= 24 && h > 0, `"${p.title}" fits the 24-column grid`)
    for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
      if (cells.has(`${i},${j}`)) t.fail(`"${p.title}" overlaps another panel at ${i},${j}`)
      cells.add(`${i},${j}`)
    }
  }
  for (const p of graphs) {
    t.match(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `"${p.title}": the datasource variable`)
    t.ok(p.description, `"${p.title}": a description`)
    t.ok((p.targets ?? []).length > 0, `"${p.title}": at least one query`)
    for (const target of p.targets ?? []) {
      t.match(target.datasource, { uid: '${datasource}' })
      for (const s of promqlSelectors(target.expr)) {
        t.ok(['namespace', 'job', 'instance'].every((l) => s.labels.includes(l)), `"${p.title}" ${target.refId}: ${s.metric} filtered by $namespace, $job and $instance`)
      }
      const selected = new Set(promqlSelectors(target.expr).map((s) => s.metric))
      t.same(promqlMetricNames(target.expr).filter((n) => !selected.has(n)), [], `"${p.title}" ${target.refId}: no metric read without the variables`)
    }
  }
  const titles = graphs.map((p) => p.title.toLowerCase()).join('\n')
  for (const topic of ['tokens issued by grant', 'refresh rotations', 'reuse', 'login failures', 'lockouts', 'verification outcomes', 'latency', 'jwks cache age', 'jwks fetches', 'revocation feed', 'store errors', 'cpu', 'memory', 'event loop lag', 'load shedding', 'requests by route', '5xx by route']) {
    t.match(titles, topic, `a panel on ${topic}`)
  }
})

t.test('promtool parses every dashboard query', async (t) => {
  const d = await readDashboard()
  const queries = dashboardQueries(d)
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-dash-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const asRules = (exprs: string[]) => stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })) }] })
  const file = join(dir, 'dashboard-queries.yml')
  await writeFile(file, asRules(queries.map((q) => withoutVariables(q.expr))))
  const r = await promtool(['check', 'rules', file])
  t.equal(r.code, 0, r.out)
  t.match(r.out, new RegExp(`SUCCESS: ${queries.length} rules found`), `${queries.length} queries`)
  await writeFile(file, asRules(['sum by (job) (rate(http_request_duration_seconds_count[5m])']))
  t.not((await promtool(['check', 'rules', file])).code, 0, 'an unbalanced query is caught')
})

t.test('reading metric names out of PromQL', async (t) => {
  t.same(promqlMetricNames('sum by (namespace, job) (increase(gatehouse_refresh_reuse_detected_total[5m])) > 10'), ['gatehouse_refresh_reuse_detected_total'])
  t.same(
    promqlMetricNames('histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job=~"$job", route!~"/healthz|/readyz"}[$__rate_interval]) and on (namespace, job, instance) gatehouse_verifier_jwks_keys))'),
    ['gatehouse_verifier_jwks_keys', 'http_request_duration_seconds_bucket'],
    'functions, label lists, matchers, ranges and variables are not names',
  )
  t.same(promqlMetricNames('changes((sum by (instance) (increase(a_total{x="1"}[2m])) > bool 0)[30m:1m]) >= 4 unless on (job) b offset 5m or c * 86400 > 1e3'), ['a_total', 'b', 'c'], 'subqueries, bool, offset, numbers, keywords')
  t.same(promqlMetricNames('label_replace(up, "dst", "$1", "src", "(.*)")'), ['up'], 'strings are not names')
  t.same(promqlSelectors('x{a="1", b=~"2|3"} / y{c!="}"}'), [{ metric: 'x', labels: ['a', 'b'] }, { metric: 'y', labels: ['c'] }])
})
