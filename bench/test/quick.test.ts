import t from 'tap'
import { runScenarios } from '../lib/runner.js'

/**
 * `pnpm bench --quick` as a test (CI): every scenario starts its own servers and a private Redis,
 * runs each variant for about a second and stops everything. What is asserted are counts, never a
 * timing: requests answered and all 200, exactly one Redis command (EVALSHA) per refresh-token
 * rotation, no Redis key and no family memory added by rotations, every target's ratio reported.
 */
t.setTimeout(220_000)

const { report, results } = await runScenarios({ quick: true })

t.same(report.failures, {}, 'every scenario ran to the end')
t.same(
  results.map((r) => r.name),
  ['verify', 'cc', 'refresh', 'password', 'memory'],
)
t.ok(report.checks.length >= 20, `${report.checks.length} checks`)
for (const c of report.checks) t.ok(c.ok, `${c.name}: ${c.detail}`)
t.equal(report.facts.refresh?.redis_commands_per_rotation, 1, 'one Redis command per rotation')
t.equal(report.facts.refresh?.evalsha_calls, report.facts.refresh?.measured_rotations, 'commandstats: EVALSHA calls = rotations')
t.same(Object.keys(report.ratios).sort(), ['1a', '1b', '1c', '2a', '2b', '3', '4', '5a', '5b'], 'every target is reported')
for (const [id, r] of Object.entries(report.ratios)) t.ok(Number.isFinite(r.value) && r.value > 0, `target ${id}: a ratio was measured (${r.value})`)
for (const [scenario, medians] of Object.entries(report.medians)) {
  for (const [variant, rate] of Object.entries(medians)) t.ok(rate > 0, `${scenario}/${variant}: a rate was measured`)
}
