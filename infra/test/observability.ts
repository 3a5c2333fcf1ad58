/**
 * What the observability tests share (infra/observability/: the Grafana dashboard, the alerting
 * rules): reading them, pulling the metric names out of their PromQL, and what a /metrics scrape
 * exports. The PromQL reading is rough on purpose (no parser dependency): strings, label matchers,
 * ranges, label lists and numbers are blanked, then every identifier that is not a function (it is
 * followed by `(`) or a keyword is a metric name.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const observabilityDir = join(root, 'infra/observability')
export const alertsFile = join(observabilityDir, 'alerts.yml')
export const dashboardFile = join(observabilityDir, 'gatehouse-dashboard.json')

export interface AlertRule {
  alert: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
export interface RuleGroup {
  name: string
  rules: AlertRule[]
}

/** The groups of infra/observability/alerts.yml. */
export async function readAlertGroups(): Promise<RuleGroup[]> {
  return (parse(await readFile(alertsFile, 'utf8')) as { groups: RuleGroup[] }).groups
}

export interface DashboardTarget {
  expr: string
  refId: string
  legendFormat?: string
  datasource?: { type?: string; uid?: string }
}
export interface DashboardPanel {
  id: number
  type: string
  title: string
  description?: string
  datasource?: { type?: string; uid?: string }
  gridPos: { h: number; w: number; x: number; y: number }
  targets?: DashboardTarget[]
  panels?: DashboardPanel[]
}
export interface DashboardVariable {
  name: string
  type: string
  query: string | { query: string }
  datasource?: { type?: string; uid?: string }
  includeAll?: boolean
  allValue?: string
}
export interface Dashboard {
  uid: string
  title: string
  schemaVersion: number
  panels: DashboardPanel[]
  templating: { list: DashboardVariable[] }
}

export async function readDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(dashboardFile, 'utf8')) as Dashboard
}

/** Every panel, those inside collapsed rows included. */
export function allPanels(d: Dashboard): DashboardPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])])
}

/** Every PromQL expression of the dashboard: panel targets, and the metric of each `label_values(metric, label)` variable query. */
export function dashboardQueries(d: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = []
  for (const p of allPanels(d)) for (const target of p.targets ?? []) out.push({ where: `panel "${p.title}" ${target.refId}`, expr: target.expr })
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue
    const q = typeof v.query === 'string' ? v.query : v.query.query
    const m = /^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(q)
    if (m) out.push({ where: `variable ${v.name}`, expr: m[1]! })
    else out.push({ where: `variable ${v.name}`, expr: q })
  }
  return out
}

/** The dashboard's variables made concrete, so an expression is plain PromQL (for promtool). */
export function withoutVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}/g, '5m').replace(/\$\{?[a-zA-Z_]\w*\}?/g, '.*')
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'atan2', 'inf', 'nan', 'start', 'end'])

/** The metric names a PromQL expression reads (roughly: see the module comment). */
export function promqlMetricNames(expr: string): string[] {
  let s = expr
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
  s = s.replace(/\{[^}]*\}/g, ' ')
  s = s.replace(/\[[^\]]*\]/g, ' ')
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  s = s.replace(/\boffset\s+-?[0-9a-z]+/g, ' ')
  s = s.replace(/@\s*[0-9.]+/g, ' ')
  s = s.replace(/\$\{?\w+\}?/g, ' ')
  s = s.replace(/(^|[^a-zA-Z0-9_:.])(0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/g, '$1 ')
  const names = new Set<string>()
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = s.slice(m.index + m[0].length)
    if (/^\s*\(/.test(rest)) continue
    if (KEYWORDS.has(m[0].toLowerCase())) continue
    names.add(m[0])
  }
  return [...names].sort()
}

/** `metric{label op "value", ...}` selectors of an expression: which labels each one filters on. */
export function promqlSelectors(expr: string): Array<{ metric: string; labels: string[] }> {
  const out: Array<{ metric: string; labels: string[] }> = []
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}/g)) {
    const labels = [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"/g)].map((l) => l[1]!)
    out.push({ metric: m[1]!, labels })
  }
  return out
}

export interface Exports {
  /** Every metric family (from `# TYPE`) and, for histograms and summaries, its series names. */
  names: Set<string>
  /** Series name → label names seen on its samples. */
  labels: Map<string, Set<string>>
}

/** What one Prometheus text exposition exports. */
export function exportsOf(text: string): Exports {
  const names = new Set<string>()
  const labels = new Map<string, Set<string>>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line)
    if (type) {
      const [, name, kind] = type
      names.add(name!)
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s)
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s)
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line)
    if (!sample) continue
    names.add(sample[1]!)
    const set = labels.get(sample[1]!) ?? new Set<string>()
    for (const l of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="/g)) set.add(l[1]!)
    labels.set(sample[1]!, set)
  }
  return { names, labels }
}

/** Merges the exports of several scrapes (one per service). */
export function mergeExports(...all: Exports[]): Exports {
  const names = new Set<string>()
  const labels = new Map<string, Set<string>>()
  for (const e of all) {
    for (const n of e.names) names.add(n)
    for (const [n, ls] of e.labels) labels.set(n, new Set([...(labels.get(n) ?? []), ...ls]))
  }
  return { names, labels }
}

/** The anchor GitHub (and most Markdown renderers) give a heading. */
export function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}
