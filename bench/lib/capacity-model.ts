/**
 * The capacity model (issue 21, docs/capacity.md): a pure function from measured unit costs
 * (docs/capacity-inputs.json, written by the `capacity` bench scenario) and stated assumptions
 * to what a deployment of N users needs at its peak hour. No I/O, no clock: the same inputs give
 * the same rows, and the unit test checks the arithmetic on hand-computed cases.
 */

/** What one operation costs, measured on one machine (bench/scenarios/capacity.ts). */
export interface UnitCost {
  /** CPU µs (every thread) of the serving process (auth or resource service) per operation. */
  cpuUs: number
  /** Redis commands per operation (INFO commandstats delta / operations; commands a script runs count too). */
  redisCommands: number
  /** redis-server CPU µs per operation (INFO cpu delta / operations). */
  redisCpuUs: number
  /** Redis network bytes per operation, into and out of redis-server (INFO stats). */
  redisBytesIn: number
  redisBytesOut: number
  /** PostgreSQL statements per operation (pg_stat_statements calls delta / operations). */
  pgQueries: number
  /** Audit rows written per operation. */
  auditRows: number
}

export const OPERATIONS = [
  'password',
  'code-flow',
  'sso-code',
  'refresh',
  'cc',
  'verify-cached',
  'verify-uncached',
  'introspect',
  'revoke',
  'logout',
  'backchannel-per-client',
] as const
export type Operation = (typeof OPERATIONS)[number]

export interface MemoryCosts {
  /** Redis bytes per live refresh-token family (its hash and its index entries). */
  familyBytes: number
  /** Redis bytes per live login session (its record and its entry in the user's session index). */
  loginSessionBytes: number
  /** Redis bytes per entry of the recent-revocations set (the deny list's durable half). */
  denyEntryBytes: number
  /** Resource service heap bytes per token held by the verifier's verified-token cache. */
  cachedTokenBytes: number
  /** PostgreSQL bytes per user row (table and indexes). */
  userRowBytes: number
  /** PostgreSQL bytes per audit row (table and indexes). */
  auditRowBytes: number
}

export interface CapacityInputs {
  ops: Record<Operation, UnitCost>
  memory: MemoryCosts
}

export interface Assumptions {
  users: number
  /** Interactive logins (a code flow through the login form: one argon2id run) per user per day. */
  loginsPerUserPerDay: number
  /** Access-token lifetime in minutes: an active user's client rotates its refresh token once per lifetime. */
  refreshIntervalMinutes: number
  /** Share of the users active in the peak hour (0..1). */
  activeShareAtPeak: number
  /** API calls per active user per minute. */
  apiCallsPerActiveUserPerMinute: number
  /** Resource services (each verifying the token) one API call reaches. */
  servicesPerRequest: number
  /** Peak-hour rate over the day's average rate (logins; daily volumes are peak / factor × 86,400). */
  peakFactor: number
  /** Share of verifications served by the verified-token cache (0..1). */
  cacheHitRate: number
  /** CPU utilisation to size for (0..1): cores = CPU seconds per second / this. */
  targetCpuUtilisation: number
  /** Introspection calls per API call (0 when resource services verify JWTs themselves). */
  introspectionsPerApiCall: number
  /** Logouts (RP-initiated) per interactive login. */
  logoutsPerLogin: number
  /** Clients told by back-channel logout per logout. */
  backchannelClientsPerLogout: number
  /** Live refresh-token families per user (devices and apps signed in). */
  familiesPerUser: number
  /** Live login sessions per user. */
  sessionsPerUser: number
  /** Redis commands/s one shard (one redis-server thread) is sized for. */
  redisShardOpsPerSecond: number
  /** Memory one shard is sized for (bytes of data, before replication). */
  redisShardMemoryBytes: number
  /** Second factors per user, and bytes per factor row (assumed, not measured). */
  factorsPerUser: number
  factorRowBytes: number
  /** Days the audit trail keeps (AUDIT_RETENTION_DAYS). */
  auditRetentionDays: number
}

export const DEFAULT_ASSUMPTIONS: Omit<Assumptions, 'users'> = {
  loginsPerUserPerDay: 0.2,
  refreshIntervalMinutes: 15,
  activeShareAtPeak: 0.1,
  apiCallsPerActiveUserPerMinute: 2,
  servicesPerRequest: 2,
  peakFactor: 3,
  cacheHitRate: 0.9,
  targetCpuUtilisation: 0.6,
  introspectionsPerApiCall: 0,
  logoutsPerLogin: 0.2,
  backchannelClientsPerLogout: 1,
  familiesPerUser: 2,
  sessionsPerUser: 1,
  redisShardOpsPerSecond: 50_000,
  redisShardMemoryBytes: 8 * 1024 ** 3,
  factorsPerUser: 1,
  factorRowBytes: 300,
  auditRetentionDays: 90,
}

export const USER_COUNTS = [10_000, 100_000, 1_000_000, 10_000_000, 100_000_000] as const

/** Peak operations per second, by kind. */
export type Rates = Record<Operation, number>

export interface CapacityRow {
  users: number
  active: number
  rates: Rates
  /** Auth service CPU cores (before rounding), all of it and the login (code flow) part alone. */
  authCores: number
  loginCores: number
  /** Auth replicas of one core each: ceil(authCores), at least 1 (2 for redundancy is the operator's choice). */
  authReplicas: number
  /** Resource-side verification CPU cores over all replicas (before rounding). */
  resourceCores: number
  /** Distinct live tokens each resource replica caches, and their heap: without affinity every replica sees every active user's current token. */
  cacheEntriesPerReplica: number
  cacheMbPerReplica: number
  redisOpsPerSecond: number
  /** redis-server CPU seconds per second (one shard serves one core's worth at the target utilisation). */
  redisCpuCores: number
  redisMemoryBytes: number
  redisShardsByOps: number
  redisShardsByCpu: number
  redisShardsByMemory: number
  redisShards: number
  pgQueriesPerSecond: number
  auditRowsPerDay: number
  pgBytes: number
  /** Redis traffic, both directions, bytes/s. */
  redisNetworkBytesPerSecond: number
}

/** Peak-hour rates of every operation for `a`. */
export function peakRates(a: Assumptions): Rates {
  const active = a.users * a.activeShareAtPeak
  const logins = ((a.users * a.loginsPerUserPerDay) / 86_400) * a.peakFactor
  const api = (active * a.apiCallsPerActiveUserPerMinute) / 60
  const verifications = api * a.servicesPerRequest
  const logouts = logins * a.logoutsPerLogin
  return {
    password: 0,
    'code-flow': logins,
    'sso-code': 0,
    refresh: a.refreshIntervalMinutes > 0 ? active / (a.refreshIntervalMinutes * 60) : 0,
    cc: 0,
    'verify-cached': verifications * a.cacheHitRate,
    'verify-uncached': verifications * (1 - a.cacheHitRate),
    introspect: api * a.introspectionsPerApiCall,
    revoke: 0,
    logout: logouts,
    // The logout figure includes telling one client; each further one costs the per-client figure.
    'backchannel-per-client': logouts * Math.max(0, a.backchannelClientsPerLogout - 1),
  }
}

const AUTH_OPS: readonly Operation[] = ['password', 'code-flow', 'sso-code', 'refresh', 'cc', 'introspect', 'revoke', 'logout', 'backchannel-per-client']
const RESOURCE_OPS: readonly Operation[] = ['verify-cached', 'verify-uncached']

function sum(rates: Rates, f: (op: Operation) => number, ops: readonly Operation[] = OPERATIONS): number {
  return ops.reduce((acc, op) => acc + (rates[op] === 0 ? 0 : rates[op] * f(op)), 0)
}

/** What `a.users` users need at their peak hour, from the unit costs `inputs`. */
export function capacityRow(inputs: CapacityInputs, a: Assumptions): CapacityRow {
  const rates = peakRates(a)
  const u = inputs.ops
  const m = inputs.memory
  const util = a.targetCpuUtilisation
  const authCores = sum(rates, (op) => u[op].cpuUs / 1e6, AUTH_OPS) / util
  const loginCores = (rates['code-flow'] * u['code-flow'].cpuUs) / 1e6 / util
  const resourceCores = sum(rates, (op) => u[op].cpuUs / 1e6, RESOURCE_OPS) / util
  const active = a.users * a.activeShareAtPeak
  const cacheEntriesPerReplica = Math.ceil(active)
  const redisOpsPerSecond = sum(rates, (op) => u[op].redisCommands)
  const redisCpuCores = sum(rates, (op) => u[op].redisCpuUs / 1e6) / util
  // Deny-list entries (a family revoked by a logout) live as long as the access tokens they refuse
  // could: one access-token lifetime.
  const denyEntries = rates.logout * a.refreshIntervalMinutes * 60
  const redisMemoryBytes = a.users * (a.familiesPerUser * m.familyBytes + a.sessionsPerUser * m.loginSessionBytes) + denyEntries * m.denyEntryBytes
  const redisShardsByOps = Math.ceil(redisOpsPerSecond / a.redisShardOpsPerSecond)
  const redisShardsByCpu = Math.ceil(redisCpuCores)
  const redisShardsByMemory = Math.ceil(redisMemoryBytes / a.redisShardMemoryBytes)
  const daily = (rate: number) => (rate / a.peakFactor) * 86_400
  const auditRowsPerDay = OPERATIONS.reduce((acc, op) => acc + (rates[op] === 0 ? 0 : daily(rates[op]) * u[op].auditRows), 0)
  const pgBytes = a.users * (m.userRowBytes + a.factorsPerUser * a.factorRowBytes) + auditRowsPerDay * a.auditRetentionDays * m.auditRowBytes
  return {
    users: a.users,
    active,
    rates,
    authCores,
    loginCores,
    authReplicas: Math.max(1, Math.ceil(authCores)),
    resourceCores,
    cacheEntriesPerReplica,
    cacheMbPerReplica: (cacheEntriesPerReplica * m.cachedTokenBytes) / 1024 / 1024,
    redisOpsPerSecond,
    redisCpuCores,
    redisMemoryBytes,
    redisShardsByOps,
    redisShardsByCpu,
    redisShardsByMemory,
    redisShards: Math.max(1, redisShardsByOps, redisShardsByCpu, redisShardsByMemory),
    pgQueriesPerSecond: sum(rates, (op) => u[op].pgQueries),
    auditRowsPerDay,
    pgBytes,
    redisNetworkBytesPerSecond: sum(rates, (op) => u[op].redisBytesIn + u[op].redisBytesOut),
  }
}

/** One row per user count (10k … 100M), every other assumption as given. */
export function capacityTable(inputs: CapacityInputs, assumptions: Omit<Assumptions, 'users'> = DEFAULT_ASSUMPTIONS, users: readonly number[] = USER_COUNTS): CapacityRow[] {
  return users.map((n) => capacityRow(inputs, { ...assumptions, users: n }))
}

function compact(n: number): string {
  if (n >= 1e9) return `${+(n / 1e9).toFixed(1)}G`
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`
  if (n >= 1e4) return `${+(n / 1e3).toFixed(0)}k`
  if (n >= 100) return n.toFixed(0)
  if (n >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

function bytes(n: number): string {
  if (n >= 1024 ** 4) return `${+(n / 1024 ** 4).toFixed(1)} TiB`
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(1)} GiB`
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(0)} MiB`
  return `${+(n / 1024).toFixed(0)} KiB`
}

/** The model table as Markdown (docs/capacity.md, between its markers). */
export function formatCapacityTable(rows: readonly CapacityRow[]): string {
  const head = ['users', 'peak logins/s', 'peak refresh/s', 'peak verifications/s', 'auth cores (login part)', 'auth replicas', 'resource verify cores', 'cache per replica', 'Redis cmds/s', 'Redis memory', 'Redis shards (ops / CPU / memory)', 'PostgreSQL q/s', 'audit rows/day', 'PostgreSQL size', 'Redis traffic']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---:').join('|')}|`]
  for (const r of rows) {
    lines.push(
      `| ${[
        compact(r.users),
        compact(r.rates['code-flow']),
        compact(r.rates.refresh),
        compact(r.rates['verify-cached'] + r.rates['verify-uncached']),
        `${compact(r.authCores)} (${compact(r.loginCores)})`,
        String(r.authReplicas),
        compact(r.resourceCores),
        `${compact(r.cacheEntriesPerReplica)} tokens, ${compact(r.cacheMbPerReplica)} MB`,
        compact(r.redisOpsPerSecond),
        bytes(r.redisMemoryBytes),
        `${r.redisShards} (${r.redisShardsByOps} / ${r.redisShardsByCpu} / ${r.redisShardsByMemory})`,
        compact(r.pgQueriesPerSecond),
        compact(r.auditRowsPerDay),
        bytes(r.pgBytes),
        `${bytes(r.redisNetworkBytesPerSecond)}/s`,
      ].join(' | ')} |`,
    )
  }
  return lines.join('\n')
}
