import t from 'tap'
import { DEFAULT_ASSUMPTIONS, OPERATIONS, USER_COUNTS, capacityRow, capacityTable, formatCapacityTable, peakRates, type Assumptions, type CapacityInputs, type Operation, type UnitCost } from '../lib/capacity-model.js'

/**
 * The capacity model's arithmetic (bench/lib/capacity-model.ts, docs/capacity.md) on small cases
 * computed by hand: round unit costs, round assumptions.
 */

const zero: UnitCost = { cpuUs: 0, redisCommands: 0, redisCpuUs: 0, redisBytesIn: 0, redisBytesOut: 0, pgQueries: 0, auditRows: 0 }

function inputs(over: Partial<Record<Operation, Partial<UnitCost>>> = {}): CapacityInputs {
  const ops = Object.fromEntries(OPERATIONS.map((op) => [op, { ...zero, ...over[op] }])) as Record<Operation, UnitCost>
  return { ops, memory: { familyBytes: 500, loginSessionBytes: 1000, denyEntryBytes: 50, cachedTokenBytes: 2048, userRowBytes: 400, auditRowBytes: 200 } }
}

/** 86,400 users, one login each a day, peak factor 1: one login per second. 10 % active, 1 API call per minute. */
const base: Assumptions = {
  ...DEFAULT_ASSUMPTIONS,
  users: 86_400,
  loginsPerUserPerDay: 1,
  peakFactor: 1,
  activeShareAtPeak: 0.1,
  refreshIntervalMinutes: 10,
  apiCallsPerActiveUserPerMinute: 1,
  servicesPerRequest: 2,
  cacheHitRate: 0.75,
  targetCpuUtilisation: 0.5,
  introspectionsPerApiCall: 0,
  logoutsPerLogin: 0.5,
  backchannelClientsPerLogout: 3,
  familiesPerUser: 2,
  sessionsPerUser: 1,
  redisShardOpsPerSecond: 1000,
  redisShardMemoryBytes: 100 * 1024 * 1024,
  factorsPerUser: 1,
  factorRowBytes: 100,
  auditRetentionDays: 10,
}

t.test('peak rates from the assumptions', async (t) => {
  const r = peakRates(base)
  t.equal(r['code-flow'], 1, '86,400 logins a day, peak factor 1: 1/s')
  // 8,640 active users, one rotation per 10 minutes: 14.4/s.
  t.equal(r.refresh, 8640 / 600)
  // 8,640 calls per minute = 144/s, each verified by 2 services: 288/s, 75 % of them from the cache.
  t.equal(r['verify-cached'], 216)
  t.equal(r['verify-uncached'], 72)
  t.equal(r.logout, 0.5)
  t.equal(r['backchannel-per-client'], 1, 'the logout figure tells one client; 2 more per logout at 0.5/s')
  t.equal(r.introspect, 0)
  t.equal(peakRates({ ...base, refreshIntervalMinutes: 0 }).refresh, 0, 'no refresh interval: no rotations')
})

t.test('auth cores: rate × CPU per op / utilisation', async (t) => {
  // 1 login/s × 100 ms = 0.1 core; 14.4 rotations/s × 1 ms = 0.0144; at 50 %: 0.2288.
  const row = capacityRow(inputs({ 'code-flow': { cpuUs: 100_000 }, refresh: { cpuUs: 1000 } }), base)
  t.equal(row.loginCores, 0.2)
  t.ok(Math.abs(row.authCores - 0.2288) < 1e-12, `${row.authCores}`)
  t.equal(row.authReplicas, 1)
  const noLogins = capacityRow(inputs({ 'code-flow': { cpuUs: 100_000 }, refresh: { cpuUs: 1000 } }), { ...base, loginsPerUserPerDay: 0 })
  t.equal(noLogins.loginCores, 0, 'zero logins: zero login cores')
  t.ok(Math.abs(noLogins.authCores - 0.0288) < 1e-12, 'only the rotations are left')
})

t.test('doubling the users doubles every rate-driven figure before rounding', async (t) => {
  const costs = inputs({ 'code-flow': { cpuUs: 70_000, redisCommands: 50, pgQueries: 4, auditRows: 2 }, refresh: { cpuUs: 900, redisCommands: 6, redisCpuUs: 20, redisBytesIn: 300, redisBytesOut: 200 }, 'verify-cached': { cpuUs: 80 }, 'verify-uncached': { cpuUs: 400 } })
  const one = capacityRow(costs, base)
  const two = capacityRow(costs, { ...base, users: base.users * 2 })
  for (const k of ['authCores', 'loginCores', 'resourceCores', 'redisOpsPerSecond', 'redisCpuCores', 'redisMemoryBytes', 'pgQueriesPerSecond', 'auditRowsPerDay', 'pgBytes', 'redisNetworkBytesPerSecond', 'cacheEntriesPerReplica'] as const) {
    t.ok(Math.abs(two[k] - 2 * one[k]) <= 1e-9 * Math.max(1, two[k]), `${k}: ${one[k]} → ${two[k]}`)
  }
})

t.test('resource side: verification cores and the cache', async (t) => {
  // 216 cached × 100 µs + 72 uncached × 500 µs = 0.0216 + 0.036 = 0.0576 CPU s/s; at 50 %: 0.1152.
  const row = capacityRow(inputs({ 'verify-cached': { cpuUs: 100 }, 'verify-uncached': { cpuUs: 500 } }), base)
  t.ok(Math.abs(row.resourceCores - 0.1152) < 1e-12, `${row.resourceCores}`)
  t.equal(row.authCores, 0, 'verification is not the auth service’s work')
  t.equal(row.cacheEntriesPerReplica, 8640, 'every active user’s current token')
  t.equal(row.cacheMbPerReplica, (8640 * 2048) / 1024 / 1024)
})

t.test('Redis: commands, memory, shards', async (t) => {
  // 1 login/s × 50 + 14.4 rotations/s × 6 = 136.4 commands/s.
  const row = capacityRow(inputs({ 'code-flow': { redisCommands: 50 }, refresh: { redisCommands: 6, redisCpuUs: 100_000 } }), base)
  t.ok(Math.abs(row.redisOpsPerSecond - 136.4) < 1e-9)
  t.equal(row.redisShardsByOps, 1)
  // 14.4/s × 0.1 s of Redis CPU = 1.44 s/s; at 50 %: 2.88 → 3 shards.
  t.ok(Math.abs(row.redisCpuCores - 2.88) < 1e-9)
  t.equal(row.redisShardsByCpu, 3)
  // 86,400 × (2 × 500 + 1000) + (0.5 logouts/s × 600 s) × 50 = 172,800,000 + 15,000 bytes.
  t.equal(row.redisMemoryBytes, 172_815_000)
  t.equal(row.redisShardsByMemory, 2, '165 MiB over 100 MiB shards')
  t.equal(row.redisShards, 3, 'the largest of the three')
  const busy = capacityRow(inputs({ refresh: { redisCommands: 100 } }), base)
  t.equal(busy.redisShardsByOps, 2, '1,440 commands/s over 1,000 per shard')
})

t.test('PostgreSQL: queries, audit rows and size', async (t) => {
  // Logins 1/s with 4 statements and 2 audit rows; logouts 0.5/s with 1 audit row.
  const row = capacityRow(inputs({ 'code-flow': { pgQueries: 4, auditRows: 2 }, logout: { auditRows: 1 } }), base)
  t.equal(row.pgQueriesPerSecond, 4)
  t.equal(row.auditRowsPerDay, 2 * 86_400 + 0.5 * 86_400)
  // Users: 86,400 × (400 + 1 × 100); audit: 216,000 rows/day × 10 days × 200 bytes.
  t.equal(row.pgBytes, 86_400 * 500 + 216_000 * 10 * 200)
  const peaky = capacityRow(inputs({ 'code-flow': { auditRows: 1 } }), { ...base, peakFactor: 4 })
  t.equal(peaky.rates['code-flow'], 4, 'the peak is 4 × the average')
  t.equal(peaky.auditRowsPerDay, 86_400, 'but the day holds the average')
})

t.test('network: Redis bytes both ways', async (t) => {
  const row = capacityRow(inputs({ 'code-flow': { redisBytesIn: 1000, redisBytesOut: 3000 } }), base)
  t.equal(row.redisNetworkBytesPerSecond, 4000)
})

t.test('the table: one row per user count, formatted', async (t) => {
  const rows = capacityTable(inputs({ 'code-flow': { cpuUs: 70_000 } }))
  t.same(rows.map((r) => r.users), [...USER_COUNTS])
  const md = formatCapacityTable(rows)
  t.equal(md.split('\n').length, 2 + USER_COUNTS.length)
  t.match(md, /\| 100M \|/)
})
