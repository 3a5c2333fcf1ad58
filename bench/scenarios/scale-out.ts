import { readFile } from 'node:fs/promises'
import { parseInfo, type RespClient } from '../../packages/test-harness/src/index.js'
import { cpuTimeMs } from '../lib/children.js'
import type { BenchSettings, Scenario } from '../lib/context.js'
import { cpuLimits, throttledSeconds } from '../lib/cpu-limit.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { measureRounds, ranChecks, toMeasurement, type Check, type Measurement, type Sample, type ScenarioResult, type Variant } from '../lib/measure.js'
import { CC_CLIENT, Scope, authReplicaSecrets, logins, privateCluster, serviceTokens, startAuth, startResourceService, tokenRequest, type ServerHandle } from '../lib/stack.js'
import { freePort } from '../../packages/test-harness/src/index.js'
import { ccRequest } from './client-credentials.js'
import { chain } from './refresh.js'

/** Each replica's CPU limit, in cores (a quarter of a core: four replicas fill one). */
export const REPLICA_SHARE = 0.25
/** Connections of the load per replica. */
const CONNECTIONS_PER_REPLICA = 8

/** used_cpu_sys + used_cpu_user of a Redis node (INFO cpu), in ms. */
async function redisCpuMs(c: RespClient): Promise<number> {
  const info = parseInfo(await c.call('INFO', 'cpu'))
  return (Number(info.used_cpu_sys) + Number(info.used_cpu_user)) * 1000
}

/** Busy and total jiffies of the whole machine (/proc/stat), for its utilization. */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

interface Observed {
  /** Each replica's CPU use, as a fraction of its limit. */
  replicaUse: number[]
  /** CPU ms the replicas spent per request (all of them together). */
  cpuMsPerRequest: number
  /** Seconds each replica was throttled by its quota. */
  throttled: number[]
  /** CPU ms each Redis master spent per 1,000 requests (above its idle use). */
  redisMsPer1k: number[]
  /** Each Redis master's CPU use above idle, as a fraction of one core. */
  redisUse: number[]
  /** The load generator's CPU use, as a fraction of one core. */
  loaderUse: number
  /** The machine's CPU use, as a fraction of all its cores. */
  machineUse: number
}

/**
 * Scale-out (issue 21): auth replicas 1, 2 and 4 (resource replicas the same) sharing one 3-master
 * Redis Cluster, each replica limited to REPLICA_SHARE of a core (cpu-limit.ts: cgroup v2, v1, or
 * taskset to one core). The load goes round-robin over the replicas (autocannon with one URL per
 * replica): refresh-token rotations, client_credentials, and GET /documents on the resource
 * replicas with a pool of tokens. Reported per N: the rate, the rate per replica (does it hold
 * as replicas are added?), each replica's CPU use of its limit and its throttled time, Redis CPU
 * per master (INFO cpu deltas) per 1,000 requests and as utilization, the load generator's and
 * the machine's CPU use: where the first shared bottleneck appears. Opt-in (it starts up to 11
 * processes per step); --quick runs N = 1 and 2 for a second each.
 */
export const scaleOutScenario: Scenario = {
  name: 'scale-out',
  title: 'auth and resource replicas 1, 2, 4 on a 3-master Redis Cluster, each limited to a quarter core',
  optIn: true,
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { log } = settings
    const steps = settings.quick ? [1, 2] : [1, 2, 4]
    const outer = new Scope()
    const measurements: Measurement[] = []
    const checks: Check[] = []
    const facts: Record<string, number | string> = {}
    try {
      const limits = await cpuLimits()
      outer.add(() => limits.close())
      facts.cpu_limit_method = limits.method
      facts.replica_cpu_limit_cores = REPLICA_SHARE
      log(`scale-out: CPU limits by ${limits.method}, ${REPLICA_SHARE} core per replica`)
      const { cluster, nodesEnv, masters } = await privateCluster(outer)
      const admins = await Promise.all(
        masters.map(async (port) => {
          const c = await cluster.client(port)
          outer.add(() => c.close())
          return c
        }),
      )
      // Redis's own CPU when idle (its cron, the cluster bus), subtracted from the figures per request.
      const idle0 = await Promise.all(admins.map(redisCpuMs))
      const idleStart = Date.now()
      await new Promise((r) => setTimeout(r, 2000))
      const idle1 = await Promise.all(admins.map(redisCpuMs))
      const idleMsPerS = idle1.map((x, i) => (x - idle0[i]!) / ((Date.now() - idleStart) / 1000))
      facts.redis_idle_cpu_by_master = idleMsPerS.map((x) => `${(x / 10).toFixed(1)}%`).join(' ')
      // Unpinned: the quota is the limit; the load generator floats too.
      const loader = await outer.own(Loader.start('load (scale-out)', undefined))

      for (const n of steps) {
        const scope = new Scope()
        try {
          log(`scale-out: ${n} auth and ${n} resource replicas`)
          const ports = await Promise.all(Array.from({ length: n }, () => freePort()))
          const shared = await authReplicaSecrets(scope, `http://127.0.0.1:${ports[0]!}`)
          const auths = await Promise.all(ports.map((port) => startAuth(scope, { port, shared, cpu: undefined, env: { REDIS_CLUSTER_NODES: nodesEnv } })))
          // Resource replica i subscribes to the revocation feed through master i mod 3.
          const resources = await Promise.all(auths.map((_, i) => startResourceService(scope, { issuer: shared.issuer, redisUrl: `redis://127.0.0.1:${masters[i % masters.length]!}`, cpu: undefined })))
          for (const s of [...auths, ...resources]) await limits.limit(s.pid, REPLICA_SHARE)
          const c = CONNECTIONS_PER_REPLICA * n
          const tokens = await serviceTokens(shared.issuer, 400)
          // Fresh families for each run, logged in on every replica (a family rotates on any of them).
          const families = async (): Promise<string[]> => (await Promise.all(auths.map((a) => logins(a.url, CONNECTIONS_PER_REPLICA)))).flat()
          // Warms every replica's key cache and directory cache (the first request of each is not the steady state).
          for (const a of auths) await tokenRequest(a.url, CC_CLIENT, { grant_type: 'client_credentials', scope: 'documents:read' })

          const observe = async (servers: ServerHandle[], fn: () => Promise<Sample>): Promise<{ sample: Sample; observed: Observed }> => {
            const cpu0 = await Promise.all(servers.map((s) => cpuTimeMs(s.pid)))
            const thr0 = await Promise.all(servers.map((s) => throttledSeconds(s.pid)))
            const redis0 = await Promise.all(admins.map(redisCpuMs))
            const load0 = await cpuTimeMs(loader.pid)
            const m0 = await machineTicks()
            const t0 = Date.now()
            const sample = await fn()
            const seconds = (Date.now() - t0) / 1000
            const cpu1 = await Promise.all(servers.map((s) => cpuTimeMs(s.pid)))
            const thr1 = await Promise.all(servers.map((s) => throttledSeconds(s.pid)))
            const redis1 = await Promise.all(admins.map(redisCpuMs))
            const load1 = await cpuTimeMs(loader.pid)
            const m1 = await machineTicks()
            const redisMs = redis1.map((x, i) => Math.max(0, x - redis0[i]! - idleMsPerS[i]! * seconds))
            return {
              sample,
              observed: {
                cpuMsPerRequest: sample.count > 0 ? cpu1.reduce<number>((a, x, i) => a + (x ?? 0) - (cpu0[i] ?? 0), 0) / sample.count : 0,
                replicaUse: cpu1.map((x, i) => ((x ?? 0) - (cpu0[i] ?? 0)) / 1000 / seconds / REPLICA_SHARE),
                throttled: thr1.map((x, i) => x - thr0[i]!),
                redisMsPer1k: redisMs.map((ms) => (sample.count > 0 ? (ms * 1000) / sample.count : 0)),
                redisUse: redisMs.map((ms) => ms / 1000 / seconds),
                loaderUse: ((load1 ?? 0) - (load0 ?? 0)) / 1000 / seconds,
                machineUse: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total),
              },
            }
          }
          const last = new Map<string, Observed>()
          const variant = (name: string, what: string, servers: ServerHandle[], request: (seconds: number) => Promise<LoadRequest>): Variant => ({
            name: `${name}-n${n}`,
            what: `${what}, ${n} replica${n > 1 ? 's' : ''} round-robin`,
            run: async (seconds) => {
              const spec = await request(seconds)
              const s = await observe(servers, async () => {
                const r = await loader.run({ ...spec, seconds })
                return { rate: r.rps, non2xx: r.non2xx + (r.broken ?? 0), errors: r.errors + r.timeouts, latencyP99: r.latencyP99, count: r.completed }
              })
              last.set(name, s.observed)
              return s.sample
            },
          })
          const urls = auths.map((a) => a.url)
          const variants: Variant[] = [
            variant('refresh', 'POST /token refresh_token (rotation)', auths, async () => ({ ...chain(auths[0]!, await families()), url: urls })),
            variant('cc', 'POST /token client_credentials', auths, async () => ({ ...ccRequest(auths[0]!, c), url: urls })),
            variant('verify', 'GET /documents on the resource replicas, pool of 400 tokens', resources, async () => ({ kind: 'pool', url: resources.map((r) => r.url), connections: c, path: '/documents', tokens })),
          ]
          const samples = await measureRounds(variants, { ...settings, rounds: Math.min(settings.rounds, 2), warmupSeconds: Math.min(settings.warmupSeconds, 2) })
          for (const v of variants) {
            const m = toMeasurement(v, samples.get(v.name)!)
            measurements.push(m)
            const base = v.name.replace(/-n\d+$/, '')
            const o = last.get(base)!
            const pct = (x: number): string => `${(x * 100).toFixed(0)}%`
            facts[`${v.name}_per_replica`] = Math.round(m.median / n)
            facts[`${v.name}_replica_cpu_of_limit`] = o.replicaUse.map(pct).join(' ')
            facts[`${v.name}_replica_cpu_ms_per_request`] = Number(o.cpuMsPerRequest.toFixed(2))
            facts[`${v.name}_replica_throttled_s`] = o.throttled.map((x) => x.toFixed(1)).join(' ')
            facts[`${v.name}_redis_cpu_ms_per_1k_by_master`] = o.redisMsPer1k.map((x) => x.toFixed(1)).join(' ')
            facts[`${v.name}_redis_cpu_by_master`] = o.redisUse.map(pct).join(' ')
            facts[`${v.name}_loader_cpu`] = pct(o.loaderUse)
            facts[`${v.name}_machine_cpu`] = pct(o.machineUse)
          }
          checks.push(...ranChecks('scale-out', variants.map((v) => toMeasurement(v, samples.get(v.name)!))))
        } finally {
          await scope.close()
        }
      }
      const first = steps[0]!
      for (const name of ['refresh', 'cc', 'verify']) {
        const one = Number(facts[`${name}-n${first}_per_replica`])
        facts[`${name}_per_replica_scaling`] = steps.map((n) => `n${n}: ${(Number(facts[`${name}-n${n}_per_replica`]) / one).toFixed(2)}`).join(', ')
      }
      return { name: 'scale-out', measurements, ratios: [], checks, facts }
    } finally {
      await outer.close()
    }
  },
}
