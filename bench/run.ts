import { parseArgs } from 'node:util'
import { formatReport } from './lib/report.js'
import { SCENARIOS, runScenarios } from './lib/runner.js'

/**
 * `pnpm bench [-- options]`: runs the benchmark scenarios, prints a table of every measurement
 * and target, then ONE line of JSON (medians, ratios, facts, checks). See docs/performance.md.
 *
 *   --scenario NAME   only this scenario (repeatable): verify, dpop, cc, refresh, password, memory,
 *                     overload (3 × capacity, load shedding as in production, tight, and off),
 *                     and, only when named, directory-scale (issue 13: 1,000,000 users in
 *                     PostgreSQL), capacity (issue 21: unit costs per operation; a full run writes
 *                     docs/capacity-inputs.json and the tables of docs/capacity.md), scale-out
 *                     (issue 21: replicas 1, 2, 4 on a 3-master Cluster) and fanout (issue 21:
 *                     revocation PUBLISH to 100 / 1,000 / 5,000 subscribers)
 *   --quick           a smoke test (~1 s per variant): the scenarios run and their counts hold
 *   --rounds N --seconds S --warmup S --connections C --memory-seconds S
 *   --profile         profile each subject once more (--cpu-prof) and summarize what bounds it
 *   --no-pin          do not pin servers and load generators to separate CPUs
 *   --strict          exit 1 when a target is not met (timings are never asserted otherwise)
 *
 * Exit status: 1 when a scenario failed or a check (a count, never a timing) did not hold.
 */
// `pnpm bench -- --scenario cc` may hand the `--` through: it separates nothing here.
const argv = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'))
const { values } = parseArgs({
  args: argv,
  options: {
    scenario: { type: 'string', multiple: true },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    'memory-seconds': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  allowPositionals: false,
})

if (values.help) {
  process.stdout.write(`usage: pnpm bench [-- --scenario ${SCENARIOS.map((s) => s.name).join('|')}] [--quick] [--profile] [--strict] [--rounds N] [--seconds S] [--warmup S] [--connections C] [--memory-seconds S] [--no-pin]\n`)
  process.exit(0)
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive number\n`)
    process.exit(2)
  }
  return n
}

const outcome = await runScenarios({
  quick: values.quick,
  scenarios: values.scenario ?? [],
  rounds: num('rounds', values.rounds),
  seconds: num('seconds', values.seconds),
  warmupSeconds: num('warmup', values.warmup),
  connections: num('connections', values.connections),
  memorySeconds: num('memory-seconds', values['memory-seconds']),
  pin: !values['no-pin'],
  profile: values.profile,
  log: (line) => process.stderr.write(line + '\n'),
})
process.stdout.write(formatReport(outcome.results, outcome.report) + '\n\n')
process.stdout.write(JSON.stringify(outcome.report) + '\n')
const failed = Object.keys(outcome.report.failures).length > 0 || outcome.report.checks.some((c) => !c.ok)
const missed = Object.values(outcome.report.ratios).some((r) => !r.met)
process.exitCode = failed || (values.strict && missed) ? 1 : 0
