import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { CookieJar, browserLogin, eventually, parseInfo, startPostgres, type PostgresServer, type RespClient } from '../../packages/test-harness/src/index.js'
import { RECENT_REVOCATIONS_KEY } from '../../packages/service-kit/src/index.js'
import { Verifier } from '../../packages/verifier/src/index.js'
import { migrateDatabase } from '../../services/auth/src/database/migrate.js'
import type { BenchSettings, Scenario } from '../lib/context.js'
import { cpuTimeMs } from '../lib/children.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { median, type Check, type Measurement, type ScenarioResult } from '../lib/measure.js'
import { commandCalls, delta } from '../lib/redis-stats.js'
import { APP_CLIENT, AUDIENCE, CC_CLIENT, FORM, Scope, USERS, basic, logins, privateRedis, redisAdmin, serviceTokens, startAuth, startResource, tokenRequest, type ServerHandle } from '../lib/stack.js'
import { OPERATIONS, capacityTable, formatCapacityTable, type MemoryCosts, type Operation, type UnitCost } from '../lib/capacity-model.js'
import { ccRequest } from './client-credentials.js'
import { fill } from './directory-scale.js'
import { passwordLogins } from './password.js'

/**
 * Issue 21: the unit costs of the capacity model (bench/lib/capacity-model.ts, docs/capacity.md).
 * One stack as production wires it: the auth service with a private Redis and a private
 * PostgreSQL (DATABASE_URL; pg_stat_statements preloaded to count statements), the resource
 * service with its verified-token cache on and off, and the relying parties' back-channel logout
 * receiver in this process. Each operation runs a fixed number of times (autocannon with
 * `amount`, or a small script for the browser flows), and what it cost is read around it:
 *  - CPU µs of the serving process (/proc), of redis-server (INFO cpu);
 *  - Redis commands (INFO commandstats) and bytes in and out (INFO stats);
 *  - PostgreSQL statements (pg_stat_statements calls, BEGIN/COMMIT included) and audit rows;
 * minus what the stack does idle over as long (measured first: the back-channel worker's poll,
 * the audit writer's flush). Then memory: Redis MEMORY USAGE of the families, login sessions and
 * recent-revocations entries the service created; the heap of the verifier's cache per token (in
 * this process, packages/verifier); PostgreSQL bytes per user row and per audit row.
 *
 * Opt-in (`--scenario capacity`). A full run writes docs/capacity-inputs.json and regenerates
 * the tables of docs/capacity.md between their markers; `--quick` never writes (CI).
 */

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url))
const INPUTS_FILE = join(DOCS, 'capacity-inputs.json')
const CAPACITY_DOC = join(DOCS, 'capacity.md')

/** Relying parties (authorization code + PKCE, back-channel logout): a logout tells up to this many. */
const RPS = 4

const FULL = { rounds: 3, cc: 4000, password: 120, refresh: 4000, introspect: 4000, cached: 20000, uncached: 5000, flows: 60, revokes: 100, cacheTokens: 3000, users: 20_000, idleSeconds: 3, pool: 1000 }
const QUICK = { rounds: 1, cc: 100, password: 8, refresh: 100, introspect: 100, cached: 300, uncached: 100, flows: 4, revokes: 10, cacheTokens: 300, users: 1000, idleSeconds: 1, pool: 50 }

const PG_SETTINGS = { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top', fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }

/** Marks this scenario's own statements, so that pg_stat_statements counts only the service's. */
const OWN = '/* capacity-bench */'

interface Counters {
  at: number
  cpuMs: number
  redisCalls: Record<string, number>
  redisCpuS: number
  netIn: number
  netOut: number
  pgCalls: number
  auditRows: number
}

interface OpResult extends UnitCost {
  ops: number
  bad: number
  /** commandstats by command, per operation. */
  redisDetail: Record<string, number>
}

const VERIFIER = randomBytes(32).toString('base64url')
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url')

/** EVALSHA and EVAL calls per operation: the Redis round trips that run a script. */
function scriptCalls(r: OpResult): number {
  return (r.redisDetail.evalsha ?? 0) + (r.redisDetail.eval ?? 0)
}

/** The back-channel logout receiver and redirect target of the relying parties. */
async function startReceiver(scope: Scope): Promise<{ port: number; logouts: () => number }> {
  let logouts = 0
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/bcl')) {
      req.resume()
      req.on('end', () => {
        logouts++
        res.writeHead(200).end()
      })
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  scope.add(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.address() as AddressInfo).port, logouts: () => logouts }
}

function rp(i: number, port: number): Record<string, unknown> {
  return {
    client_id: `rp-${i}`,
    client_name: `Capacity relying party ${i}`,
    token_endpoint_auth_method: 'client_secret_basic',
    client_secret: `rp-${i}-secret`,
    grant_types: ['authorization_code', 'refresh_token'],
    scope: 'openid documents:read',
    audience: AUDIENCE,
    redirect_uris: [`http://127.0.0.1:${port}/cb`],
    backchannel_logout_uri: `http://127.0.0.1:${port}/bcl/${i}`,
    backchannel_logout_session_required: true,
  }
}

async function writeConfig(scope: Scope, port: number): Promise<string> {
  const base = JSON.parse(await readFile(fileURLToPath(new URL('../fixtures/auth-config.json', import.meta.url)), 'utf8')) as { clients: Record<string, unknown>[] }
  // The service client may introspect (its own tokens): the introspection figure.
  base.clients = base.clients.map((c) => (c.client_id === CC_CLIENT.id ? { ...c, introspection: true } : c))
  base.clients.push(...Array.from({ length: RPS }, (_, i) => rp(i, port)))
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-capacity-'))
  scope.add(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'auth-config.json')
  await writeFile(file, JSON.stringify(base))
  return file
}

/** `n` calls of `fn(i)`, `parallel` at a time; returns how many failed. */
async function lanes(n: number, parallel: number, fn: (i: number) => Promise<boolean>): Promise<number> {
  let next = 0
  let bad = 0
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      if (!(await fn(i).catch(() => false))) bad++
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane))
  return bad
}

interface Session {
  jar: CookieJar
  idToken: string
}

function authorizeUrl(issuer: string, client: number, port: number): string {
  return `${issuer}/authorize?${new URLSearchParams({ response_type: 'code', client_id: `rp-${client}`, redirect_uri: `http://127.0.0.1:${port}/cb`, scope: 'openid documents:read', state: randomBytes(8).toString('base64url'), code_challenge: CHALLENGE, code_challenge_method: 'S256' })}`
}

async function exchange(issuer: string, client: number, port: number, code: string): Promise<Record<string, unknown>> {
  return await tokenRequest(issuer, { id: `rp-${client}`, secret: `rp-${client}-secret` }, { grant_type: 'authorization_code', code, redirect_uri: `http://127.0.0.1:${port}/cb`, code_verifier: VERIFIER })
}

/** Keys matching `pattern` (SCAN), at most `limit`. */
async function scanKeys(admin: RespClient, pattern: string, limit: number): Promise<string[]> {
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = (await admin.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000')) as unknown as [string, string[]]
    cursor = next
    out.push(...keys)
  } while (cursor !== '0' && out.length < limit)
  return out.slice(0, limit)
}

async function memoryUsage(admin: RespClient, key: string): Promise<number> {
  return Number(await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
}

/** Average MEMORY USAGE of the keys matching `pattern` (a sample). */
async function averageKeyBytes(admin: RespClient, pattern: string): Promise<{ keys: number; bytes: number }> {
  const keys = await scanKeys(admin, pattern, 200)
  if (keys.length === 0) return { keys: 0, bytes: 0 }
  let total = 0
  for (const k of keys) total += await memoryUsage(admin, k)
  return { keys: keys.length, bytes: total / keys.length }
}

/** Bytes per member of the index keys matching `pattern` (sets or sorted sets): their MEMORY USAGE over their members. */
async function bytesPerMember(admin: RespClient, pattern: string, card: 'SCARD' | 'ZCARD'): Promise<number> {
  const keys = await scanKeys(admin, pattern, 10_000)
  let bytes = 0
  let members = 0
  for (const k of keys) {
    bytes += await memoryUsage(admin, k)
    members += Number(await admin.call(card, k))
  }
  return members > 0 ? bytes / members : 0
}

/** Heap bytes per token held by the verifier's cache: `tokens` distinct tokens verified once each, in this process. */
async function cachedTokenBytes(issuer: string, tokens: string[]): Promise<{ bytes: number; cached: number }> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const verifier = new Verifier({ issuer, audience: AUDIENCE, cache: { maxEntries: tokens.length + 100 } })
  try {
    await verifier.ready()
    // Each token verified as a fresh copy, made after the first reading: the cache holds the
    // request's token string, which a server would otherwise have freed with the request.
    const copy = (t: string) => Buffer.from(t).toString()
    await verifier.verify(copy(tokens[0]!))
    gc()
    const before = process.memoryUsage().heapUsed
    for (let i = 1; i < tokens.length; i++) await verifier.verify(copy(tokens[i]!))
    gc()
    const after = process.memoryUsage().heapUsed
    return { bytes: (after - before) / (tokens.length - 1), cached: verifier.stats().cachedTokens }
  } finally {
    await verifier.close()
  }
}

export const capacityScenario: Scenario = {
  name: 'capacity',
  title: 'unit costs per operation (CPU, Redis, PostgreSQL, memory) for the capacity model (docs/capacity.md)',
  optIn: true,
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const size = settings.quick ? QUICK : FULL
    const loadStart = loadavg()[0]!
    const scope = new Scope()
    try {
      log('capacity: starting postgresql, redis, the back-channel receiver')
      const pg: PostgresServer = await startPostgres({ settings: PG_SETTINGS })
      scope.add(() => pg.stop())
      const dbUrl = await pg.createDatabase('gatehouse')
      await migrateDatabase(dbUrl)
      await pg.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', [], 'gatehouse')
      const redis = await privateRedis(scope)
      const admin = await redisAdmin(scope, redis)
      const receiver = await startReceiver(scope)
      const configFile = await writeConfig(scope, receiver.port)

      log('capacity: starting auth (Redis + PostgreSQL), resource (cache on, off), load')
      const auth = await startAuth(scope, { redisUrl: redis.url, cpu: placement.server, env: { DATABASE_URL: dbUrl, AUTH_CONFIG_FILE: configFile } })
      const [cached, uncached, loader, pool] = await Promise.all([
        startResource(scope, { issuer: auth.url, cache: true, cpu: placement.server }),
        startResource(scope, { issuer: auth.url, cache: false, cpu: placement.server }),
        scope.own(Loader.start('load (capacity)', placement.load)),
        serviceTokens(auth.url, size.pool),
      ])

      const pgCalls = async (): Promise<number> =>
        Number(
          (
            await pg.query(
              `${OWN} SELECT coalesce(sum(calls), 0) AS n FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'gatehouse') AND query NOT LIKE '%capacity-bench%'`,
              [],
              'gatehouse',
            )
          ).rows[0].n,
        )
      const auditRows = async (): Promise<number> => Number((await pg.query(`${OWN} SELECT count(*) AS n FROM audit_events`, [], 'gatehouse')).rows[0].n)
      const snapshot = async (pid: number): Promise<Counters> => {
        const info = parseInfo(await admin.call('INFO', 'cpu'))
        const stats = parseInfo(await admin.call('INFO', 'stats'))
        return {
          at: Date.now(),
          cpuMs: (await cpuTimeMs(pid)) ?? 0,
          redisCalls: await commandCalls(admin),
          redisCpuS: Number(info.used_cpu_user ?? 0) + Number(info.used_cpu_sys ?? 0),
          netIn: Number(stats.total_net_input_bytes ?? 0),
          netOut: Number(stats.total_net_output_bytes ?? 0),
          pgCalls: await pgCalls(),
          auditRows: await auditRows(),
        }
      }
      // What the stack does on its own per second (and what reading the counters costs), subtracted from every figure.
      const idleStart = await snapshot(auth.pid)
      await new Promise((r) => setTimeout(r, size.idleSeconds * 1000))
      const idleEnd = await snapshot(auth.pid)
      const idleS = (idleEnd.at - idleStart.at) / 1000
      const idleCalls = delta(idleStart.redisCalls, idleEnd.redisCalls)
      const idle = {
        redisCalls: Object.fromEntries(Object.entries(idleCalls).map(([k, v]) => [k, v / idleS])),
        redisCpuS: (idleEnd.redisCpuS - idleStart.redisCpuS) / idleS,
        netIn: (idleEnd.netIn - idleStart.netIn) / idleS,
        netOut: (idleEnd.netOut - idleStart.netOut) / idleS,
        pgCalls: (idleEnd.pgCalls - idleStart.pgCalls) / idleS,
        authCpuMs: (idleEnd.cpuMs - idleStart.cpuMs) / idleS,
      }

      /** One measured run of `ops` operations served by `pid`; the idle work over as long is subtracted. */
      const measureOnce = async (pid: number, run: () => Promise<{ ops: number; bad: number }>, wait?: () => Promise<unknown>): Promise<OpResult> => {
        const before = await snapshot(pid)
        const { ops, bad } = await run()
        if (wait) await wait()
        // The audit writer flushes every second: give it one flush (a full run only; --quick asserts no PostgreSQL figure).
        if (!settings.quick) await new Promise((r) => setTimeout(r, 1100))
        const after = await snapshot(pid)
        const s = (after.at - before.at) / 1000
        const per = (x: number) => (ops > 0 ? Math.max(0, x) / ops : 0)
        const d = delta(before.redisCalls, after.redisCalls)
        const detail: Record<string, number> = {}
        for (const [k, v] of Object.entries(d)) {
          if (k === 'info' || k === 'scan' || k === 'memory') continue
          const net = v - (idle.redisCalls[k] ?? 0) * s
          if (net / Math.max(1, ops) >= 0.005) detail[k] = per(net)
        }
        // The resource services do nothing on their own: only the auth service's idle CPU is subtracted.
        const idleCpu = pid === auth.pid ? idle.authCpuMs : 0
        return {
          ops,
          bad,
          cpuUs: per((after.cpuMs - before.cpuMs - idleCpu * s) * 1000),
          redisCommands: Object.values(detail).reduce((a, b) => a + b, 0),
          redisDetail: detail,
          redisCpuUs: per((after.redisCpuS - before.redisCpuS - idle.redisCpuS * s) * 1e6),
          redisBytesIn: per(after.netIn - before.netIn - idle.netIn * s),
          redisBytesOut: per(after.netOut - before.netOut - idle.netOut * s),
          pgQueries: per(after.pgCalls - before.pgCalls - idle.pgCalls * s),
          auditRows: per(after.auditRows - before.auditRows),
        }
      }
      /** `rounds` runs (the scenario's, unless told); the median of every figure. */
      const measure = async (name: string, pid: number, run: () => Promise<{ ops: number; bad: number }>, o: { wait?: () => Promise<unknown>; rounds?: number } = {}): Promise<OpResult> => {
        const runs: OpResult[] = []
        const rounds = o.rounds ?? size.rounds
        for (let r = 0; r < rounds; r++) {
          const one = await measureOnce(pid, run, o.wait)
          log(`  ${name} ${r + 1}/${rounds}: ${one.ops} ops, ${one.cpuUs.toFixed(0)} µs CPU, ${one.redisCommands.toFixed(2)} Redis commands, ${one.pgQueries.toFixed(2)} SQL statements per op`)
          runs.push(one)
        }
        const mid = (f: (x: OpResult) => number) => median(runs.map(f))
        const detailKeys = new Set(runs.flatMap((x) => Object.keys(x.redisDetail)))
        return {
          ops: runs.reduce((a, x) => a + x.ops, 0),
          bad: runs.reduce((a, x) => a + x.bad, 0),
          cpuUs: mid((x) => x.cpuUs),
          redisCommands: mid((x) => x.redisCommands),
          redisDetail: Object.fromEntries([...detailKeys].map((k) => [k, mid((x) => x.redisDetail[k] ?? 0)])),
          redisCpuUs: mid((x) => x.redisCpuUs),
          redisBytesIn: mid((x) => x.redisBytesIn),
          redisBytesOut: mid((x) => x.redisBytesOut),
          pgQueries: mid((x) => x.pgQueries),
          auditRows: mid((x) => x.auditRows),
        }
      }
      const cannon = async (spec: LoadRequest, amount: number): Promise<{ ops: number; bad: number }> => {
        const r = await loader.run({ ...spec, amount, seconds: 0 })
        return { ops: r.completed, bad: r.non2xx + r.errors + r.timeouts + (r.broken ?? 0) }
      }
      /** A fifth of the amount first, not measured (JIT, connections, caches), then the measured rounds. */
      const measureLoad = async (name: string, pid: number, spec: LoadRequest, amount: number): Promise<OpResult> => {
        if (!settings.quick) await cannon(spec, Math.ceil(amount / 5))
        return await measure(name, pid, () => cannon(spec, amount))
      }
      const results = {} as Record<Operation, OpResult>
      const c = settings.connections

      log('capacity: client_credentials, password, refresh, introspection')
      results.cc = await measureLoad('cc', auth.pid, ccRequest(auth, c), size.cc)
      results.password = await measureLoad('password', auth.pid, passwordLogins(auth), size.password)
      // The families are made before the measured runs (logins cost a KDF each); each run goes on from the tokens the last one left.
      let families = await logins(auth.url, Math.min(c, 16))
      results.refresh = await measure('refresh', auth.pid, async () => {
        const r = await loader.run({ kind: 'chain', url: auth.url, connections: families.length, path: '/token', headers: { authorization: basic(APP_CLIENT.id, APP_CLIENT.secret), 'content-type': FORM }, refreshTokens: families, amount: size.refresh, seconds: 0 })
        families = r.refreshTokens ?? families
        return { ops: r.completed, bad: r.non2xx + r.errors + r.timeouts + (r.broken ?? 0) }
      })
      // A user's access token (it names its family, which introspection reads), introspected by the API's client.
      const userToken = (await tokenRequest(auth.url, APP_CLIENT, { grant_type: 'password', username: USERS[0]!.username, password: USERS[0]!.password })).access_token as string
      results.introspect = await measureLoad('introspect', auth.pid, { kind: 'static', url: auth.url, connections: c, method: 'POST', path: '/introspect', headers: { authorization: basic(CC_CLIENT.id, CC_CLIENT.secret), 'content-type': FORM }, body: `token=${userToken}` }, size.introspect)

      log('capacity: verification at the resource service, cache on and off')
      results['verify-cached'] = await measureLoad('verify-cached', cached.pid, { kind: 'pool', url: cached.url, connections: c, path: '/documents', tokens: pool }, size.cached)
      results['verify-uncached'] = await measureLoad('verify-uncached', uncached.pid, { kind: 'static', url: uncached.url, connections: c, method: 'GET', path: '/documents', headers: { authorization: `Bearer ${pool[0]}` } }, size.uncached)

      log('capacity: authorization code + PKCE through the login form, then SSO codes for the other relying parties')
      const port = receiver.port
      const sessions: Session[] = []
      const flow = async (i: number): Promise<boolean> => {
        const u = USERS[i % USERS.length]!
        const login = await browserLogin(authorizeUrl(auth.url, 0, port), { username: u.username, password: u.password })
        if (login.code === null) return false
        const tokens = await exchange(auth.url, 0, port, login.code)
        sessions.push({ jar: login.jar, idToken: tokens.id_token as string })
        return typeof tokens.id_token === 'string'
      }
      results['code-flow'] = await measure('code-flow', auth.pid, async () => ({ ops: size.flows, bad: await lanes(size.flows, 4, flow) }))
      // Half the sessions stay with one relying party; the other half sign in to the others too (SSO: no form).
      const single = sessions.filter((_, i) => i % 2 === 0)
      const multi = sessions.filter((_, i) => i % 2 === 1)
      const sso = async (i: number): Promise<boolean> => {
        const s = multi[Math.floor(i / (RPS - 1))]!
        const client = 1 + (i % (RPS - 1))
        const login = await browserLogin(authorizeUrl(auth.url, client, port), { jar: s.jar })
        if (login.code === null || login.form !== undefined) return false
        const tokens = await exchange(auth.url, client, port, login.code)
        return typeof tokens.refresh_token === 'string'
      }
      // One round only: each SSO sign-in adds a relying party to a session, which the logouts below need exactly once.
      results['sso-code'] = await measure('sso-code', auth.pid, async () => ({ ops: multi.length * (RPS - 1), bad: await lanes(multi.length * (RPS - 1), 4, sso) }), { rounds: 1 })

      // Login sessions are measured while they live (the logouts below end them all).
      const loginSession = await averageKeyBytes(admin, 'gatehouse:login-sess:*')
      const userSessMember = await bytesPerMember(admin, 'gatehouse:user-sess:*', 'ZCARD')
      const sessFamMember = await bytesPerMember(admin, 'gatehouse:sess-fams:*', 'SCARD')

      log('capacity: logout (RP-initiated, back-channel delivery included), one relying party and four')
      const logout = async (s: Session): Promise<boolean> => {
        const res = await fetch(`${auth.url}/logout?${new URLSearchParams({ id_token_hint: s.idToken })}`, { redirect: 'manual', headers: { cookie: s.jar.header() } })
        await res.arrayBuffer()
        return res.status === 200
      }
      const told = (n: number) => () => eventually('back-channel logouts delivered', async () => receiver.logouts(), (x) => x >= n, 30_000)
      const logoutOne = await measure('logout-1', auth.pid, async () => ({ ops: single.length, bad: await lanes(single.length, 4, (i) => logout(single[i]!)) }), { wait: told(single.length), rounds: 1 })
      const logoutMany = await measure('logout-4', auth.pid, async () => ({ ops: multi.length, bad: await lanes(multi.length, 4, (i) => logout(multi[i]!)) }), { wait: told(single.length + multi.length * RPS), rounds: 1 })
      const deliveredLogouts = receiver.logouts()
      results.logout = logoutOne
      const perClient = (f: (x: OpResult) => number) => Math.max(0, (f(logoutMany) - f(logoutOne)) / (RPS - 1))
      results['backchannel-per-client'] = {
        ops: logoutMany.ops,
        bad: logoutMany.bad,
        cpuUs: perClient((x) => x.cpuUs),
        redisCommands: perClient((x) => x.redisCommands),
        redisDetail: {},
        redisCpuUs: perClient((x) => x.redisCpuUs),
        redisBytesIn: perClient((x) => x.redisBytesIn),
        redisBytesOut: perClient((x) => x.redisBytesOut),
        pgQueries: perClient((x) => x.pgQueries),
        auditRows: perClient((x) => x.auditRows),
      }

      log('capacity: /revoke of refresh-token families')
      // The families to revoke are made first (password logins, not measured); each run revokes its share.
      const toRevoke = await logins(auth.url, size.revokes * size.rounds, 8)
      results.revoke = await measure('revoke', auth.pid, async () => {
        const tokens = toRevoke.splice(0, size.revokes)
        return {
          ops: tokens.length,
          bad: await lanes(tokens.length, 8, async (i) => {
            const res = await fetch(`${auth.url}/revoke`, { method: 'POST', headers: { authorization: basic(APP_CLIENT.id, APP_CLIENT.secret), 'content-type': FORM }, body: new URLSearchParams({ token: tokens[i]!, token_type_hint: 'refresh_token' }) })
            await res.arrayBuffer()
            return res.status === 200
          }),
        }
      })

      log('capacity: memory (Redis MEMORY USAGE, verifier cache heap, PostgreSQL rows)')
      const family = await averageKeyBytes(admin, 'gatehouse:fam:*')
      const userFamMember = await bytesPerMember(admin, 'gatehouse:user-fams:*', 'SCARD')
      const recentCount = Number(await admin.call('ZCARD', RECENT_REVOCATIONS_KEY))
      const recentBytes = recentCount > 0 ? await memoryUsage(admin, RECENT_REVOCATIONS_KEY) : 0
      const cacheTokens = await serviceTokens(auth.url, size.cacheTokens)
      const { bytes: tokenBytes, cached: tokensCached } = await cachedTokenBytes(auth.url, cacheTokens)
      const sizingUrl = await pg.createDatabase('sizing')
      await migrateDatabase(sizingUrl)
      await fill(pg, 'sizing', size.users, 0)
      const sizeOf = async (db: string, table: string): Promise<{ rows: number; bytes: number }> => {
        const r = (await pg.query(`${OWN} SELECT count(*) AS n, pg_total_relation_size('${table}') AS b FROM ${table}`, [], db)).rows[0]
        return { rows: Number(r.n), bytes: Number(r.b) }
      }
      const usersSize = await sizeOf('sizing', 'users')
      const auditSize = await sizeOf('gatehouse', 'audit_events')
      const memory: MemoryCosts = {
        familyBytes: family.bytes + userFamMember,
        // A session's record, its entry in the user's index, and its family index (one member per family it holds).
        loginSessionBytes: loginSession.bytes + userSessMember + sessFamMember,
        denyEntryBytes: recentCount > 0 ? recentBytes / recentCount : 0,
        cachedTokenBytes: tokenBytes,
        userRowBytes: usersSize.rows > 0 ? usersSize.bytes / usersSize.rows : 0,
        auditRowBytes: auditSize.rows > 0 ? auditSize.bytes / auditSize.rows : 0,
      }

      const versions = {
        node: process.version,
        redis: String(parseInfo(await admin.call('INFO', 'server')).redis_version ?? ''),
        postgres: String((await pg.query('SHOW server_version')).rows[0].server_version),
      }
      const loadEnd = loadavg()[0]!
      const round = (x: number, d = 2) => Number(x.toFixed(d))
      const ops = Object.fromEntries(
        OPERATIONS.map((op) => {
          const r = results[op]
          return [op, { ops: r.ops, cpuUs: round(r.cpuUs, 0), redisCommands: round(r.redisCommands), redisCpuUs: round(r.redisCpuUs, 1), redisBytesIn: round(r.redisBytesIn, 0), redisBytesOut: round(r.redisBytesOut, 0), pgQueries: round(r.pgQueries), auditRows: round(r.auditRows), redisDetail: Object.fromEntries(Object.entries(r.redisDetail).map(([k, v]) => [k, round(v)])) }]
        }),
      ) as Record<Operation, UnitCost & { ops: number; redisDetail: Record<string, number> }>
      const inputs = {
        gatehouse_capacity_inputs: 1,
        date: new Date().toISOString(),
        mode: settings.quick ? 'quick' : 'full',
        machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', pinned: placement.server !== undefined, load_average_1m_start: round(loadStart), load_average_1m_end: round(loadEnd) },
        versions,
        counting: {
          cpu: 'CPU time (user + system, every thread) of the serving process from /proc, minus its idle CPU over as long',
          redis: 'INFO commandstats calls (commands run by a script included), INFO cpu, INFO stats total_net_input_bytes/total_net_output_bytes; minus the idle rate',
          postgres: 'pg_stat_statements (preloaded on the private server, track=top) calls in the auth database, BEGIN/COMMIT included; audit rows counted in audit_events',
          memory: 'Redis MEMORY USAGE ... SAMPLES 0 of keys the service created; verifier cache: heap delta (after gc) over distinct tokens verified once; PostgreSQL: pg_total_relation_size / rows',
        },
        idle_per_second: { auth_cpu_ms: round(idle.authCpuMs), redis_calls: round(Object.values(idle.redisCalls).reduce((a, b) => a + b, 0)), pg_statements: round(idle.pgCalls) },
        ops,
        memory: Object.fromEntries(Object.entries(memory).map(([k, v]) => [k, round(v, 0)])) as unknown as MemoryCosts,
        redis_single_thread: {
          rotations_per_cpu_second: results.refresh.redisCpuUs > 0 ? round(1e6 / results.refresh.redisCpuUs, 0) : 0,
          commands_per_cpu_second_rotation_mix: results.refresh.redisCpuUs > 0 ? round((1e6 / results.refresh.redisCpuUs) * results.refresh.redisCommands, 0) : 0,
        },
        samples: { family_keys: family.keys, login_session_keys: loginSession.keys, recent_revocations: recentCount, cached_tokens: cacheTokens.length, sizing_users: usersSize.rows, audit_rows: auditSize.rows },
      }

      if (!settings.quick) {
        await writeFile(INPUTS_FILE, JSON.stringify(inputs, null, 2) + '\n')
        await writeCapacityDoc(inputs)
        log(`capacity: wrote ${INPUTS_FILE} and the tables of ${CAPACITY_DOC}`)
      }

      const checks: Check[] = OPERATIONS.filter((op) => op !== 'backchannel-per-client').map((op) => ({
        name: `capacity/${op}: every operation answered 200`,
        ok: results[op].ops > 0 && results[op].bad === 0,
        detail: `${results[op].ops} operations, ${results[op].bad} failed`,
      }))
      checks.push(
        { name: 'capacity/logout: both logout runs answered 200', ok: logoutMany.bad === 0 && logoutMany.ops > 0, detail: `${logoutMany.ops} logouts of sessions with ${RPS} relying parties, ${logoutMany.bad} failed` },
        {
          // The process's first rotation loads the script (NOSCRIPT, then EVAL): script calls, not EVALSHA alone, are one per rotation.
          name: 'capacity/refresh: one script call (EVALSHA) per rotation (commandstats, idle subtracted)',
          ok: Math.abs(scriptCalls(results.refresh) - 1) < 0.05,
          detail: `${scriptCalls(results.refresh).toFixed(3)} script calls per rotation; every command per rotation: ${JSON.stringify(ops.refresh.redisDetail)}`,
        },
        { name: 'capacity/logout: every relying party of every ended session was told (back-channel)', ok: deliveredLogouts === single.length + multi.length * RPS, detail: `${deliveredLogouts} logout tokens received for ${single.length} + ${multi.length} × ${RPS} expected` },
        { name: 'capacity/memory: the service created the keys measured', ok: family.keys > 0 && loginSession.keys > 0 && recentCount > 0 && tokensCached === cacheTokens.length, detail: `${family.keys} family keys, ${loginSession.keys} login sessions sampled, ${recentCount} recent revocations, ${tokensCached} of ${cacheTokens.length} tokens in the verifier's cache (${tokenBytes.toFixed(0)} heap bytes each)` },
        { name: 'capacity/postgresql: the auth service ran its statements on the private server', ok: results.password.pgQueries > 0 || results['code-flow'].pgQueries > 0, detail: `${results.password.pgQueries.toFixed(2)} statements per password login` },
      )

      const measurements: Measurement[] = []
      const facts: Record<string, number | string> = {
        load_average_1m_start: loadStart,
        load_average_1m_end: loadEnd,
        redis_rotations_per_cpu_second: inputs.redis_single_thread.rotations_per_cpu_second,
        ...Object.fromEntries(Object.entries(memory).map(([k, v]) => [`memory_${k}`, v])),
      }
      for (const op of OPERATIONS) {
        const r = results[op]
        facts[`${op}_cpu_us`] = r.cpuUs
        facts[`${op}_redis_commands`] = r.redisCommands
        facts[`${op}_redis_cpu_us`] = r.redisCpuUs
        facts[`${op}_redis_bytes`] = r.redisBytesIn + r.redisBytesOut
        facts[`${op}_pg_statements`] = r.pgQueries
      }
      facts.refresh_script_calls_per_rotation = scriptCalls(results.refresh)
      return { name: 'capacity', measurements, ratios: [], checks, facts }
    } finally {
      await scope.close()
    }
  },
}

type Inputs = { date: string; machine: { cpus: number; model: string; load_average_1m_start: number; load_average_1m_end: number }; versions: Record<string, string>; ops: Record<Operation, UnitCost & { ops: number }>; memory: MemoryCosts; redis_single_thread: { rotations_per_cpu_second: number } }

const LABELS: Record<Operation, string> = {
  password: 'password grant (argon2id)',
  'code-flow': 'authorization code + PKCE: /authorize, login form (argon2id), /token',
  'sso-code': 'authorization code, live session (SSO, no form): /authorize, /token',
  refresh: 'refresh-token rotation',
  cc: 'client_credentials',
  'verify-cached': 'resource: GET with a cached token',
  'verify-uncached': 'resource: GET, RS256 check (cache off)',
  introspect: "introspection (RFC 7662) of a user's access token",
  revoke: '/revoke of a refresh-token family',
  logout: 'RP-initiated logout, one client told (back-channel delivery included)',
  'backchannel-per-client': 'each further client told at logout (its family revoked, its logout token delivered)',
}

/** The unit-cost table of docs/capacity.md, from the inputs. */
export function formatUnitCosts(inputs: Inputs): string {
  const lines = [
    `Measured ${inputs.date.slice(0, 16).replace('T', ' ')} UTC on ${inputs.machine.cpus} × ${inputs.machine.model}, Node ${inputs.versions.node}, Redis ${inputs.versions.redis}, PostgreSQL ${inputs.versions.postgres}; 1-minute load average ${inputs.machine.load_average_1m_start} at the start, ${inputs.machine.load_average_1m_end} at the end.`,
    '',
    '| operation | ops counted | CPU µs/op (serving process) | Redis cmds/op | Redis CPU µs/op | Redis bytes in/out per op | SQL statements/op | audit rows/op |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const op of OPERATIONS) {
    const r = inputs.ops[op]
    lines.push(`| \`${op}\`: ${LABELS[op]} | ${r.ops} | ${r.cpuUs} | ${r.redisCommands} | ${r.redisCpuUs} | ${r.redisBytesIn} / ${r.redisBytesOut} | ${r.pgQueries} | ${r.auditRows} |`)
  }
  const m = inputs.memory
  lines.push(
    '',
    '| memory | bytes |',
    '|---|---:|',
    `| Redis, per live refresh-token family (hash + user index entry) | ${m.familyBytes} |`,
    `| Redis, per login session (record + user index entry + family index) | ${m.loginSessionBytes} |`,
    `| Redis, per recent-revocations (deny-list) entry | ${m.denyEntryBytes} |`,
    `| resource service heap, per token in the verifier's cache | ${m.cachedTokenBytes} |`,
    `| PostgreSQL, per user row (table + indexes) | ${m.userRowBytes} |`,
    `| PostgreSQL, per audit row (table + indexes) | ${m.auditRowBytes} |`,
    '',
    `One redis-server thread: ${inputs.redis_single_thread.rotations_per_cpu_second.toLocaleString('en-US')} rotations (EVALSHA) per CPU second, from its CPU time during the rotations.`,
  )
  return lines.join('\n')
}

function replaceBetween(text: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`
  const end = `<!-- ${name}:end -->`
  const i = text.indexOf(begin)
  const j = text.indexOf(end)
  if (i < 0 || j < i) throw new Error(`docs/capacity.md has no ${begin} … ${end} markers`)
  return text.slice(0, i + begin.length) + '\n' + body + '\n' + text.slice(j)
}

async function writeCapacityDoc(inputs: Inputs): Promise<void> {
  let doc = await readFile(CAPACITY_DOC, 'utf8')
  doc = replaceBetween(doc, 'capacity-inputs', formatUnitCosts(inputs))
  doc = replaceBetween(doc, 'capacity-table', formatCapacityTable(capacityTable({ ops: inputs.ops, memory: inputs.memory })))
  await writeFile(CAPACITY_DOC, doc)
}
