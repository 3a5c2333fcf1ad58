/**
 * What a scenario reports, and how it measures: every variant (the subject and its references)
 * is warmed up, then measured in rounds that interleave the variants (rotating their order), so a
 * machine that drifts during the run moves every variant alike. Ratios are the median of the
 * per-round ratios: two figures measured a few seconds apart are compared, never figures measured
 * minutes apart.
 */

export interface Sample {
  /** Operations (responses, signatures, KDF runs) per second. */
  rate: number
  non2xx?: number
  errors?: number
  latencyP99?: number
  /** Responses (or operations) counted. */
  count: number
  /**
   * CPU time (µs, every thread) the serving process spent per operation. Unlike a rate, it hardly
   * moves when other work shares the machine, so it shows what a dedicated core would deliver.
   */
  cpuUs?: number
}

export interface Measurement {
  name: string
  /** What was measured, for the table. */
  what: string
  unit: 'req/s' | 'ops/s'
  samples: Sample[]
  median: number
  min: number
  max: number
  latencyP99?: number
  non2xx: number
  errors: number
  count: number
  /** Median CPU µs per operation of the serving process. */
  cpuUs?: number
}

export interface Ratio {
  /** Target id, e.g. `1a`. */
  id: string
  label: string
  subject: string
  reference: string
  value: number
  /**
   * The same comparison by CPU cost: reference CPU per operation / subject CPU per operation
   * (median of rounds), i.e. the throughput ratio each would reach on a core of its own.
   */
  cpuValue?: number
  /** The bound: the value must be at least it (`min`, a rate ratio) or at most it (`max`, a growth). */
  target: number
  bound: 'min' | 'max'
  met: boolean
}

export interface Check {
  name: string
  ok: boolean
  detail: string
}

/** One check per measurement: it ran and, over HTTP, every response was a 200. */
export function ranChecks(scenario: string, measurements: Measurement[]): Check[] {
  return measurements.map((m) => ({
    name: `${scenario}/${m.name}: ${m.unit === 'req/s' ? 'requests answered, all 200' : 'ran'}`,
    ok: m.count > 0 && m.non2xx === 0 && m.errors === 0,
    detail: `${m.count} ${m.unit === 'req/s' ? 'responses' : 'operations'}, ${m.non2xx} non-2xx, ${m.errors} errors`,
  }))
}

export interface ScenarioResult {
  name: string
  measurements: Measurement[]
  ratios: Ratio[]
  /** Facts asserted in --quick mode too (they are counts, never timings). */
  checks: Check[]
  /** Other figures reported as they are (Redis commands per request, memory, …). */
  facts: Record<string, number | string>
  /** Profile summaries (--profile), as printable text. */
  profiles?: string[]
}

export interface Variant {
  name: string
  what: string
  unit?: 'req/s' | 'ops/s'
  /** Runs once for `seconds` and reports what it did. */
  run(seconds: number): Promise<Sample>
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export interface RoundsOptions {
  rounds: number
  seconds: number
  warmupSeconds: number
  log: (line: string) => void
}

/** Warms every variant up, then measures them round by round; returns samples per variant. */
export async function measureRounds(variants: readonly Variant[], o: RoundsOptions): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>(variants.map((v) => [v.name, []]))
  if (o.warmupSeconds > 0) {
    for (const v of variants) {
      o.log(`  warm-up ${v.name}`)
      await v.run(o.warmupSeconds)
    }
  }
  for (let r = 0; r < o.rounds; r++) {
    // Rotate the order so that no variant always runs first (right after a warm-up or a pause).
    const order = variants.map((_, i) => variants[(i + r) % variants.length]!)
    for (const v of order) {
      const s = await v.run(o.seconds)
      out.get(v.name)!.push(s)
      o.log(`  round ${r + 1}/${o.rounds} ${v.name}: ${s.rate.toFixed(0)} ${v.unit ?? 'req/s'}${s.non2xx ? `, ${s.non2xx} non-2xx` : ''}`)
    }
  }
  return out
}

export function toMeasurement(v: Variant, samples: Sample[]): Measurement {
  const rates = samples.map((s) => s.rate)
  const p99s = samples.map((s) => s.latencyP99).filter((x): x is number => x !== undefined)
  const m: Measurement = {
    name: v.name,
    what: v.what,
    unit: v.unit ?? 'req/s',
    samples,
    median: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
    non2xx: samples.reduce((a, s) => a + (s.non2xx ?? 0), 0),
    errors: samples.reduce((a, s) => a + (s.errors ?? 0), 0),
    count: samples.reduce((a, s) => a + s.count, 0),
  }
  if (p99s.length > 0) m.latencyP99 = median(p99s)
  const cpu = samples.map((s) => s.cpuUs).filter((x): x is number => x !== undefined && Number.isFinite(x))
  if (cpu.length > 0) m.cpuUs = median(cpu)
  return m
}

/** The median over rounds of subject/reference, each round's pair measured back to back. */
export function ratio(id: string, label: string, samples: Map<string, Sample[]>, subject: string, reference: string, target: number): Ratio {
  const a = samples.get(subject) ?? []
  const b = samples.get(reference) ?? []
  const per: number[] = []
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (b[i]!.rate > 0) per.push(a[i]!.rate / b[i]!.rate)
  const value = median(per)
  const cost: number[] = []
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!.cpuUs
    const y = b[i]!.cpuUs
    if (x !== undefined && y !== undefined && x > 0) cost.push(y / x)
  }
  const r: Ratio = { id, label, subject, reference, value, target, bound: 'min', met: value >= target }
  if (cost.length > 0) r.cpuValue = median(cost)
  return r
}
