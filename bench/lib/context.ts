import { cpuTimeMs } from './children.js'
import type { LoadResult } from './load.js'
import type { ScenarioResult, Sample } from './measure.js'
import type { Placement } from './stack.js'

/** How a run is set up: the CLI flags, resolved (run.ts). */
export interface BenchSettings {
  quick: boolean
  rounds: number
  /** Seconds per measured round. */
  seconds: number
  warmupSeconds: number
  /** Concurrent connections of the HTTP load (the reference figures use 50). */
  connections: number
  /** Seconds of the memory run after its warm-up (the issue asks for 5 minutes). */
  memorySeconds: number
  memoryWarmupSeconds: number
  placement: Placement
  /** Profile each subject once more after measuring it (profiling.ts). */
  profile: boolean
  log: (line: string) => void
}

export interface Scenario {
  name: string
  /** One line: what it measures. */
  title: string
  /** Runs only when named (--scenario NAME), never in a run of every scenario: it takes minutes of setup. */
  optIn?: boolean
  run(settings: BenchSettings): Promise<ScenarioResult>
}

export function sampleOf(r: LoadResult): Sample {
  return { rate: r.rps, non2xx: r.non2xx, errors: r.errors + r.timeouts, latencyP99: r.latencyP99, count: r.completed }
}

/** Runs `fn` and adds the CPU time process `pid` spent per operation meanwhile. */
export async function withCpu(pid: number, fn: () => Promise<Sample>): Promise<Sample> {
  const before = await cpuTimeMs(pid)
  const s = await fn()
  const after = await cpuTimeMs(pid)
  if (before !== undefined && after !== undefined && s.count > 0) s.cpuUs = ((after - before) * 1000) / s.count
  return s
}
