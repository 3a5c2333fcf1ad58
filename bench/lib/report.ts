import { cpus } from 'node:os'
import type { BenchSettings } from './context.js'
import type { ScenarioResult } from './measure.js'

export interface BenchReport {
  gatehouse_bench: 1
  date: string
  mode: 'quick' | 'full'
  machine: { cpus: number; model: string; node: string; pinned: boolean }
  settings: { rounds: number; seconds: number; warmup_seconds: number; connections: number; memory_seconds: number }
  /** Median rate of every variant, by scenario. */
  medians: Record<string, Record<string, number>>
  /** Median CPU µs per operation of the process serving each variant, by scenario. */
  cpu_us: Record<string, Record<string, number>>
  /** Every target: its measured ratio (and the same by CPU cost) and whether it holds. */
  ratios: Record<string, { label: string; value: number; cpu_value?: number; target: number; bound: 'min' | 'max'; met: boolean }>
  facts: Record<string, Record<string, number | string>>
  checks: { name: string; ok: boolean; detail: string }[]
  /** Scenarios that could not run, with why. */
  failures: Record<string, string>
}

export function buildReport(settings: BenchSettings, results: ScenarioResult[], failures: Record<string, string>): BenchReport {
  const round = (x: number) => Math.round(x * 1000) / 1000
  return {
    gatehouse_bench: 1,
    date: new Date().toISOString(),
    mode: settings.quick ? 'quick' : 'full',
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, pinned: settings.placement.server !== undefined },
    settings: { rounds: settings.rounds, seconds: settings.seconds, warmup_seconds: settings.warmupSeconds, connections: settings.connections, memory_seconds: settings.memorySeconds },
    medians: Object.fromEntries(results.map((r) => [r.name, Object.fromEntries(r.measurements.map((m) => [m.name, Math.round(m.median)]))])),
    cpu_us: Object.fromEntries(results.map((r) => [r.name, Object.fromEntries(r.measurements.filter((m) => m.cpuUs !== undefined).map((m) => [m.name, Math.round(m.cpuUs!)]))])),
    ratios: Object.fromEntries(
      results.flatMap((r) =>
        r.ratios.map((x) => [x.id, { label: x.label, value: round(x.value), ...(x.cpuValue === undefined ? {} : { cpu_value: round(x.cpuValue) }), target: x.target, bound: x.bound, met: x.met }]),
      ),
    ),
    facts: Object.fromEntries(results.map((r) => [r.name, Object.fromEntries(Object.entries(r.facts).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]))])),
    checks: results.flatMap((r) => r.checks),
    failures,
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]) => '| ' + r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |'
  const sep = '|' + widths.map((w, i) => (i <= 1 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|'
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n')
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US')

/** The human part: a Markdown table of every measurement, one of the targets, the facts and checks. */
export function formatReport(results: ScenarioResult[], report: BenchReport): string {
  const out: string[] = []
  const rows: string[][] = [['scenario', 'variant', 'median', 'min', 'max', 'CPU µs/op', 'p99 ms', 'non-2xx']]
  for (const r of results) {
    for (const m of r.measurements) {
      rows.push([
        r.name,
        `${m.name}: ${m.what}`,
        `${n0(m.median)} ${m.unit}`,
        n0(m.min),
        n0(m.max),
        m.cpuUs === undefined ? '' : n0(m.cpuUs),
        m.latencyP99 === undefined ? '' : String(m.latencyP99),
        m.unit === 'req/s' ? String(m.non2xx) : '',
      ])
    }
  }
  if (rows.length > 1) out.push(table(rows))
  const targets: string[][] = [['target', 'ratio (median of rounds)', 'measured', 'by CPU cost', 'goal', 'met']]
  for (const r of results) {
    for (const x of r.ratios) {
      targets.push([x.id, x.label, x.value.toFixed(2), x.cpuValue === undefined ? '' : x.cpuValue.toFixed(2), `${x.bound === 'min' ? '≥' : '≤'} ${x.target}`, x.met ? 'yes' : 'NO'])
    }
  }
  if (targets.length > 1) out.push('', table(targets))
  const facts = Object.entries(report.facts).flatMap(([s, f]) => Object.entries(f).map(([k, v]) => `  ${s}.${k}: ${v}`))
  if (facts.length > 0) out.push('', 'facts:', ...facts)
  out.push('', 'checks:', ...report.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`))
  for (const [s, why] of Object.entries(report.failures)) out.push(`  FAIL scenario ${s} did not run: ${why.split('\n')[0]}`)
  for (const r of results) for (const p of r.profiles ?? []) out.push('', p)
  return out.join('\n')
}
