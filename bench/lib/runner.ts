import { canPin, stopAll } from './children.js'
import type { BenchSettings, Scenario } from './context.js'
import type { ScenarioResult } from './measure.js'
import { buildReport, type BenchReport } from './report.js'
import { capacityScenario } from '../scenarios/capacity.js'
import { clientCredentialsScenario } from '../scenarios/client-credentials.js'
import { directoryScaleScenario } from '../scenarios/directory-scale.js'
import { fanoutScenario } from '../scenarios/fanout.js'
import { dpopScenario } from '../scenarios/dpop.js'
import { memoryScenario } from '../scenarios/memory.js'
import { overloadScenario } from '../scenarios/overload.js'
import { passwordScenario } from '../scenarios/password.js'
import { refreshScenario } from '../scenarios/refresh.js'
import { scaleOutScenario } from '../scenarios/scale-out.js'
import { verifyScenario } from '../scenarios/verify.js'

export const SCENARIOS: readonly Scenario[] = [verifyScenario, dpopScenario, clientCredentialsScenario, refreshScenario, passwordScenario, memoryScenario, directoryScaleScenario, overloadScenario, capacityScenario, scaleOutScenario, fanoutScenario]

export interface RunOptions {
  quick?: boolean
  scenarios?: readonly string[]
  rounds?: number
  seconds?: number
  warmupSeconds?: number
  connections?: number
  memorySeconds?: number
  pin?: boolean
  profile?: boolean
  log?: (line: string) => void
}

export function settingsFor(o: RunOptions): BenchSettings {
  const quick = o.quick ?? false
  const pin = (o.pin ?? true) && canPin()
  return {
    quick,
    // --quick is a smoke test of the machinery: every scenario runs briefly, nothing is timed.
    rounds: o.rounds ?? (quick ? 1 : 5),
    seconds: o.seconds ?? (quick ? 1 : 5),
    warmupSeconds: o.warmupSeconds ?? (quick ? 0 : 3),
    connections: o.connections ?? 50,
    memorySeconds: o.memorySeconds ?? (quick ? 2 : 300),
    memoryWarmupSeconds: quick ? 1 : 30,
    placement: pin ? { server: 0, load: 1 } : { server: undefined, load: undefined },
    profile: o.profile ?? false,
    log: o.log ?? (() => undefined),
  }
}

export interface RunOutcome {
  settings: BenchSettings
  results: ScenarioResult[]
  report: BenchReport
}

/** Runs the scenarios one after another; a scenario that throws is recorded, the others still run. */
export async function runScenarios(o: RunOptions = {}): Promise<RunOutcome> {
  const settings = settingsFor(o)
  const wanted = o.scenarios === undefined || o.scenarios.length === 0 ? SCENARIOS.filter((s) => s.optIn !== true) : SCENARIOS.filter((s) => o.scenarios!.includes(s.name))
  const unknown = (o.scenarios ?? []).filter((n) => !SCENARIOS.some((s) => s.name === n))
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`)
  const results: ScenarioResult[] = []
  const failures: Record<string, string> = {}
  for (const s of wanted) {
    settings.log(`# ${s.name}: ${s.title}`)
    const started = Date.now()
    try {
      results.push(await s.run(settings))
    } catch (err) {
      failures[s.name] = (err as Error).stack ?? String(err)
      settings.log(`# ${s.name} failed: ${(err as Error).message}`)
      await stopAll()
    }
    settings.log(`# ${s.name}: ${((Date.now() - started) / 1000).toFixed(0)} s`)
  }
  return { settings, results, report: buildReport(settings, results, failures) }
}
