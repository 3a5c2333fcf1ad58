import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { REPO_ROOT } from './children.js'

/**
 * Summarizes a V8 CPU profile (node --cpu-prof): where the samples fell, by function (self time)
 * and by area (the service's own code, each dependency, node internals, the garbage collector,
 * idle), so a scenario can say what bounds its figure.
 */

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  file: string
  /** Sampled milliseconds in all. */
  totalMs: number
  /** Share of samples not idle. */
  busy: number
  /** Self time by area, as shares of the busy samples, largest first. */
  areas: { area: string; share: number }[]
  /** Self time by function, as shares of the busy samples, largest first. */
  functions: { fn: string; share: number }[]
  /** Time inside each function of the workspace's own code, callees included (shares of busy samples). */
  inclusive: { fn: string; share: number }[]
  /** Time inside each area, callees included (a sample counts once for every area on its stack). */
  areasInclusive: { area: string; share: number }[]
}

/** The file a frame's url names, relative to the repository when it is ours. */
function fileOf(url: string): string {
  const path = url.startsWith('file://') ? url.slice(7) : url
  return path.startsWith(REPO_ROOT) ? relative(REPO_ROOT, path) : path
}

function area(url: string, fn: string): string {
  if (fn === '(idle)') return '(idle)'
  if (fn === '(garbage collector)') return 'gc'
  if (fn === '(program)') return '(program: native, not attributed)'
  if (url === '') return `native: ${fn || '(anonymous)'}`
  if (url.startsWith('node:internal/')) return `node:${url.slice(14).split('/')[0]}`
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`
  const path = url.startsWith('file://') ? url.slice(7) : url
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(path)
  if (pkg) return pkg[1]!
  const rel = relative(REPO_ROOT, path)
  const m = /^(services\/[^/]+|packages\/[^/]+|bench)\//.exec(rel)
  return m ? m[1]! : rel
}

/**
 * `windowMs`: only the samples of the last `windowMs` of the profile (the measured load, not the
 * process's start-up: a server is stopped, and its profile written, right after its load).
 */
export function summarize(profile: CpuProfile, file: string, top = 12, windowMs?: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfMs = new Map<number, number>()
  let total = 0
  const span = profile.timeDeltas.reduce((a, b) => a + b, 0) / 1000
  const from = windowMs === undefined ? 0 : span - windowMs
  let at = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000
    at += ms
    if (at < from) continue
    total += ms
    const id = profile.samples[i]!
    selfMs.set(id, (selfMs.get(id) ?? 0) + ms)
  }
  const areas = new Map<string, number>()
  const fns = new Map<string, number>()
  let idle = 0
  for (const [id, ms] of selfMs) {
    const n = byId.get(id)
    if (n === undefined) continue
    const { functionName, url, lineNumber } = n.callFrame
    const a = area(url, functionName)
    if (a === '(idle)') {
      idle += ms
      continue
    }
    areas.set(a, (areas.get(a) ?? 0) + ms)
    const where = url === '' ? '' : /^(services|packages)\//.test(a) ? ` ${fileOf(url)}` : ` ${a}`
    const key = `${functionName || '(anonymous)'}${where}`
    fns.set(key, (fns.get(key) ?? 0) + ms)
  }
  const busy = total - idle
  // Inclusive time of the workspace's own functions: each sample counts once for every distinct
  // function of ours on its stack.
  const inclusive = new Map<string, number>()
  const areasInclusive = new Map<string, number>()
  for (const [id, ms] of selfMs) {
    const seen = new Set<string>()
    const seenAreas = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)
      if (n === undefined) break
      const { functionName, url, lineNumber } = n.callFrame
      const a = area(url, functionName)
      if (a === '(idle)') break
      if (url !== '' && !seenAreas.has(a)) {
        seenAreas.add(a)
        areasInclusive.set(a, (areasInclusive.get(a) ?? 0) + ms)
      }
      if (!/^(services|packages)\//.test(a)) continue
      const key = `${functionName || '(anonymous)'} ${fileOf(url)}:${lineNumber + 1}`
      if (seen.has(key)) continue
      seen.add(key)
      inclusive.set(key, (inclusive.get(key) ?? 0) + ms)
    }
  }
  const ranked = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => ({ k, share: busy > 0 ? ms / busy : 0 }))
  return {
    file,
    totalMs: total,
    busy: total > 0 ? busy / total : 0,
    areas: ranked(areas).map(({ k, share }) => ({ area: k, share })),
    functions: ranked(fns).map(({ k, share }) => ({ fn: k, share })),
    inclusive: ranked(inclusive).map(({ k, share }) => ({ fn: k, share })),
    areasInclusive: ranked(areasInclusive).map(({ k, share }) => ({ area: k, share })),
  }
}

/** Every profile in `dir` (one per process that ran with --cpu-prof-dir=dir). */
export async function summarizeDir(dir: string, top = 12, windowMs?: number): Promise<ProfileSummary[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'))
  const out: ProfileSummary[] = []
  for (const f of files) out.push(summarize(JSON.parse(await readFile(join(dir, f), 'utf8')) as CpuProfile, f, top, windowMs))
  // The busiest profile first (the main thread, not the module loader's worker).
  return out.sort((a, b) => b.totalMs * b.busy - a.totalMs * a.busy)
}

export function formatSummary(s: ProfileSummary, title: string): string {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)} %`
  const lines = [`${title}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${pct(s.busy).trim()} busy`, '  self time by area (share of busy time):']
  for (const a of s.areas) lines.push(`    ${pct(a.share)}  ${a.area}`)
  lines.push('  time by area, callees included:')
  for (const a of s.areasInclusive) lines.push(`    ${pct(a.share)}  ${a.area}`)
  lines.push('  self time by function:')
  for (const f of s.functions) lines.push(`    ${pct(f.share)}  ${f.fn}`)
  if (s.inclusive.length > 0) {
    lines.push("  the workspace's own functions, callees included:")
    for (const f of s.inclusive) lines.push(`    ${pct(f.share)}  ${f.fn}`)
  }
  return lines.join('\n')
}
