import { readFile } from 'node:fs/promises'
import { parseInfo } from '../../packages/test-harness/src/index.js'
import type { BenchSettings, Scenario } from '../lib/context.js'
import { Loader, type LoadResult } from '../lib/load.js'
import { median, type Check, type Ratio, type ScenarioResult } from '../lib/measure.js'
import { APP_CLIENT, FORM, Scope, basic, logins, privateRedis, redisAdmin, serviceTokens, startAuth, startResource } from '../lib/stack.js'
import { ccRequest } from './client-credentials.js'

/** Resident set size of a process, bytes (Linux /proc). */
async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status)
  return m ? Number(m[1]) * 1024 : 0
}

interface Point {
  t: number
  auth: number
  resource: number
  redis: number
}

/** Start (median of the first tenth of the measured samples), end (the last tenth) and peak. */
function growth(points: Point[], key: 'auth' | 'resource' | 'redis'): { start: number; end: number; peak: number; endGrowth: number; peakGrowth: number } {
  const xs = points.map((p) => p[key])
  const n = Math.max(1, Math.floor(xs.length / 10))
  const start = median(xs.slice(0, n))
  const end = median(xs.slice(-n))
  const peak = Math.max(...xs)
  return { start, end, peak, endGrowth: start > 0 ? end / start - 1 : 0, peakGrowth: start > 0 ? peak / start - 1 : 0 }
}

const MB = 1024 * 1024

/**
 * Target 5: memory under sustained load. The auth service rotates refresh tokens (a family per
 * connection) and issues client_credentials tokens at the same time; the resource service answers
 * GET /documents for a pool of 1,000 tokens (cache on). All three load generators run as fast as
 * the servers answer (both servers share the servers' CPU). After a warm-up, every second: each
 * server's RSS and Redis's used_memory. Target: RSS at the end within 10 % of RSS after the
 * warm-up; Redis memory flat too (rotations add nothing per family).
 */
export const memoryScenario: Scenario = {
  name: 'memory',
  title: 'memory: RSS of both services and Redis memory under sustained load',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('memory: starting redis, auth, resource')
      const redis = await privateRedis(scope)
      const admin = await redisAdmin(scope, redis)
      const auth = await startAuth(scope, { redisUrl: redis.url, cpu: placement.server })
      const half = Math.max(1, Math.floor(settings.connections / 2))
      const [resource, loaders, pool, families] = await Promise.all([
        startResource(scope, { issuer: auth.url, cache: true, cpu: placement.server }),
        Promise.all(['refresh', 'cc', 'documents'].map((n) => scope.own(Loader.start(`load (memory, ${n})`, placement.load)))),
        serviceTokens(auth.url, 1000),
        logins(auth.url, half),
      ])
      const familyKeysBefore = Number(await admin.call('DBSIZE'))

      const total = settings.memoryWarmupSeconds + settings.memorySeconds
      log(`memory: ${settings.memoryWarmupSeconds} s warm-up, then ${settings.memorySeconds} s measured`)
      const loads: [Promise<LoadResult>, Promise<LoadResult>, Promise<LoadResult>] = [
        loaders[0]!.run({
          kind: 'chain',
          url: auth.url,
          connections: half,
          seconds: total,
          path: '/token',
          headers: { authorization: basic(APP_CLIENT.id, APP_CLIENT.secret), 'content-type': FORM },
          refreshTokens: families,
        }),
        loaders[1]!.run({ ...ccRequest(auth, half), seconds: total }),
        loaders[2]!.run({ kind: 'pool', url: resource.url, connections: settings.connections, path: '/documents', tokens: pool, seconds: total }),
      ]
      const points: Point[] = []
      const started = Date.now()
      const every = settings.quick ? 250 : 1000
      let running = true
      const done = Promise.all(loads).finally(() => (running = false))
      while (running && Date.now() - started < total * 1000) {
        const t = (Date.now() - started) / 1000
        const used = Number(parseInfo(await admin.call('INFO', 'memory')).used_memory ?? 0)
        points.push({ t, auth: await rss(auth.pid), resource: await rss(resource.pid), redis: used })
        await new Promise((r) => setTimeout(r, every))
      }
      const [refresh, cc, documents] = await done
      const measured = points.filter((p) => p.t >= settings.memoryWarmupSeconds)
      const a = growth(measured, 'auth')
      const r = growth(measured, 'resource')
      const d = growth(measured, 'redis')
      const familyKeysAfter = Number(await admin.call('DBSIZE'))

      const bound = (id: string, label: string, subject: string, value: number): Ratio => ({
        id,
        label,
        subject,
        reference: 'after warm-up',
        value: 1 + value,
        target: 1.1,
        bound: 'max',
        met: value <= 0.1,
      })
      const ratios = [
        bound('5a', 'auth RSS, end / after warm-up', 'auth', a.endGrowth),
        bound('5b', 'resource RSS, end / after warm-up', 'resource', r.endGrowth),
      ]
      const facts: Record<string, number | string> = {
        seconds_measured: settings.memorySeconds,
        auth_rss_start_mb: a.start / MB,
        auth_rss_end_mb: a.end / MB,
        auth_rss_peak_mb: a.peak / MB,
        resource_rss_start_mb: r.start / MB,
        resource_rss_end_mb: r.end / MB,
        resource_rss_peak_mb: r.peak / MB,
        redis_used_memory_start_mb: d.start / MB,
        redis_used_memory_end_mb: d.end / MB,
        refresh_rate: refresh.rps,
        cc_rate: cc.rps,
        documents_rate: documents.rps,
        rotations: refresh.ok,
      }
      const checks: Check[] = [
        { name: 'memory: the loads ran, all 200', ok: [refresh, cc, documents].every((x) => x.completed > 0 && x.non2xx === 0) && (refresh.broken ?? 0) === 0, detail: `refresh ${refresh.ok}, cc ${cc.ok}, documents ${documents.ok} answered 200; non-2xx ${refresh.non2xx + cc.non2xx + documents.non2xx}` },
        { name: 'memory: RSS sampled after the warm-up', ok: measured.length >= 2, detail: `${measured.length} samples` },
        { name: 'memory: rotations add no Redis keys', ok: familyKeysAfter === familyKeysBefore, detail: `${familyKeysBefore} keys before, ${familyKeysAfter} after ${refresh.ok} rotations` },
      ]
      return { name: 'memory', measurements: [], ratios, checks, facts }
    } finally {
      await scope.close()
    }
  },
}
