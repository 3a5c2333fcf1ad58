import t from 'tap'
import { SCENARIOS, runScenarios } from '../lib/runner.js'

/**
 * `pnpm bench --quick` as a test (CI): every scenario starts its own servers and a private Redis,
 * runs each variant for about a second and stops everything. What is asserted are counts, never a
 * timing: requests answered and all 200, exactly one Redis command (EVALSHA) per refresh-token
 * rotation, no Redis key and no family memory added by rotations, every target's ratio reported.
 * The opt-in directory-scale scenario (issue 13) runs too, named, in its quick form (10,000 users
 * in a private PostgreSQL, 2,000 lines imported: about 30 s), and so does the opt-in capacity scenario
 * (issue 21: a few operations of each kind counted, docs never written: about 30 s).
 */
t.setTimeout(320_000)

// Minutes even in their quick form; test/ops/scale-out.test.ts is the CI part of issue 21.
const NOT_IN_CI = ['scale-out', 'fanout']
const { report, results } = await runScenarios({ quick: true, scenarios: SCENARIOS.filter((s) => !NOT_IN_CI.includes(s.name)).map((s) => s.name) })

t.same(report.failures, {}, 'every scenario ran to the end')
t.same(
  results.map((r) => r.name),
  ['verify', 'dpop', 'cc', 'refresh', 'password', 'memory', 'directory-scale', 'overload', 'capacity'],
)
t.ok(report.checks.length >= 20, `${report.checks.length} checks`)
for (const c of report.checks) t.ok(c.ok, `${c.name}: ${c.detail}`)
t.equal(report.facts.refresh?.redis_commands_per_rotation, 1, 'one Redis command per rotation')
t.equal(report.facts.refresh?.evalsha_calls, report.facts.refresh?.measured_rotations, 'commandstats: EVALSHA calls = rotations')
t.same(Object.keys(report.ratios).sort(), ['13a', '13b', '14', '18a', '18b', '1a', '1b', '1c', '1d', '2a', '2b', '3', '4', '5a', '5b'], 'every target is reported')
for (const [id, r] of Object.entries(report.ratios)) t.ok(Number.isFinite(r.value) && r.value > 0, `target ${id}: a ratio was measured (${r.value})`)
t.equal(report.facts.dpop?.proofs_made_during_runs, 0, 'every DPoP proof was made before its run (outside the measured loop)')
t.equal(report.facts['directory-scale']?.users_big, 10_008, 'the filled database: 10,000 users and the 8 seeded')
t.ok(Number(report.medians['directory-scale']?.import) > 0, 'an import rate was measured')
// Idle background work (the back-channel worker's poll) is subtracted by rate: near 1, not exactly.
t.ok(Math.abs(Number(report.facts.capacity?.refresh_script_calls_per_rotation) - 1) < 0.05, 'capacity: one script call (EVALSHA) per rotation')
t.ok(Number(report.facts.capacity?.memory_familyBytes) > 0 && Number(report.facts.capacity?.memory_loginSessionBytes) > 0, 'capacity: Redis memory per family and per login session measured')
for (const [scenario, medians] of Object.entries(report.medians)) {
  for (const [variant, rate] of Object.entries(medians)) t.ok(rate > 0, `${scenario}/${variant}: a rate was measured`)
}
