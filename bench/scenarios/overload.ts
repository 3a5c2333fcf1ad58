import type { BenchSettings, Scenario } from '../lib/context.js'
import { Loader, WINDOW_MS, type LoadRequest, type LoadResult } from '../lib/load.js'
import { PacedLoader } from '../lib/paced-load.js'
import { cpuTimeMs } from '../lib/children.js'
import { type Check, type Measurement, type Ratio, type ScenarioResult } from '../lib/measure.js'
import { Scope, privateRedis, serviceTokens, startAuth, startResource, type ServerHandle } from '../lib/stack.js'
import { ccRequest } from './client-credentials.js'

/**
 * Target 18 (overload): at three times the sustainable rate of `/token` (client_credentials) and
 * of the resource route (`GET /documents`, cache on), a service with load shedding on (the
 * production defaults, service-kit overload.ts) keeps the p99 latency of the requests it accepts
 * within 2 × the unloaded p99, answers the rest `503` with `Retry-After` at once, lets no request
 * wait unbounded, and is back to normal within a second of the load dropping. The same service
 * with shedding off is measured alongside, so the difference is the mechanism's.
 *
 * Per target and per service (shedding as in production, tight, then off), one after the other:
 *  1. capacity: as fast as it answers (settings.connections, autocannon) → R;
 *  2. unloaded: 0.5 R, paced → p99 of the 200s;
 *  3. overload: 3 R, paced, over 4 × the connections → p99 and max of the 200s, the 503s, timeouts;
 *  4. recovery: 0.5 R again at once → the first WINDOW_MS window from which every window has no
 *     503 and at least 80% of the expected 200s.
 * Phases 2–4 come from an open-loop generator (paced-worker.ts): requests scheduled evenly, each
 * one's latency from its scheduled time (autocannon's rate limit sends each second's share at once).
 * Counts are checked (every response a 200 or a 503, no connection errors); timings are reported.
 */
/** The production defaults (service-kit overload.ts), the heap limit out of reach. */
const SHEDDING_ON = { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '100', OVERLOAD_MAX_HEAP_MB: '4096', OVERLOAD_MAX_QUEUE_MS: '250' }
/** The queue wait alone, tight: what bounds the accepted requests' latency (targets 18a, 18b). */
export const TIGHT_QUEUE_MS = 10
const SHEDDING_TIGHT = { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_HEAP_MB: '4096', OVERLOAD_MAX_QUEUE_MS: String(TIGHT_QUEUE_MS) }
/** Every request shed (a heap limit any process exceeds): what a refusal costs. */
const SHEDDING_ALL = { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_HEAP_MB: '1', OVERLOAD_MAX_QUEUE_MS: '0' }

/** Serving process CPU per response (µs) over one autocannon run after a warm-up (JIT, caches), and the run. */
async function cpuPerResponse(loader: Loader, server: ServerHandle, request: LoadRequest, seconds: number, warmupSeconds: number): Promise<{ us: number; result: LoadResult }> {
  if (warmupSeconds > 0) await loader.run({ ...request, seconds: warmupSeconds })
  const before = await cpuTimeMs(server.pid)
  const result = await loader.run({ ...request, seconds })
  const after = await cpuTimeMs(server.pid)
  return { us: before === undefined || after === undefined || result.completed === 0 ? Number.NaN : ((after - before) * 1000) / result.completed, result }
}

interface Phase {
  capacity: number
  unloaded: LoadResult
  overload: LoadResult
  recovery: LoadResult
  recoveryMs: number
}

function recoveredAfter(r: LoadResult, expectedPerWindow: number): number {
  const w = r.windows ?? []
  // The last window is partial: leave it out.
  const full = w.slice(0, Math.max(0, w.length - 1))
  for (let i = 0; i < full.length; i++) {
    if (full.slice(i).every((x) => x.shed === 0 && x.ok >= 0.8 * expectedPerWindow)) return i * WINDOW_MS
  }
  return Number.POSITIVE_INFINITY
}

async function phases(loader: Loader, pacer: PacedLoader, request: LoadRequest, settings: BenchSettings, seconds: number): Promise<Phase> {
  if (request.kind !== 'static' || typeof request.url !== 'string') throw new Error('overload: a static request to one server only')
  const url = request.url
  const c = settings.connections
  const capacity = (await loader.run({ ...request, connections: c, seconds })).rps
  const paced = (rate: number, connections: number, s: number): Promise<LoadResult> =>
    pacer.run({ url, method: request.method, path: request.path, headers: request.headers, ...(request.body === undefined ? {} : { body: request.body }), rate: Math.max(1, Math.round(rate)), connections, seconds: s })
  const unloaded = await paced(capacity / 2, c, seconds)
  const overload = await paced(capacity * 3, 4 * c, seconds)
  const recoverySeconds = Math.max(2, Math.min(seconds, 3))
  const recovery = await paced(capacity / 2, c, recoverySeconds)
  return { capacity, unloaded, overload, recovery, recoveryMs: recoveredAfter(recovery, (capacity / 2) * (WINDOW_MS / 1000)) }
}

function measurement(name: string, what: string, r: LoadResult): Measurement {
  const sample = { rate: r.rps, non2xx: r.non2xx, errors: r.errors + r.timeouts, latencyP99: r.byStatus?.ok.p99 ?? r.latencyP99, count: r.completed }
  return { name, what, unit: 'req/s', samples: [sample], median: r.rps, min: r.rps, max: r.rps, latencyP99: sample.latencyP99, non2xx: r.non2xx, errors: sample.errors, count: r.completed }
}

export const overloadScenario: Scenario = {
  name: 'overload',
  title: 'overload: /token and GET /documents at 3 × their sustainable rate, load shedding on and off',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('overload: starting redis, auth and resource with shedding on and off')
      const redis = await privateRedis(scope)
      const [authOn, authTight, authOff, authAll, loader, pacer] = await Promise.all([
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server, env: SHEDDING_ON }),
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server, env: SHEDDING_TIGHT }),
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server }),
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server, env: SHEDDING_ALL }),
        scope.own(Loader.start('load (overload)', placement.load)),
        scope.own(PacedLoader.start('paced load (overload)', placement.load)),
      ])
      const [resOn, resTight, resOff, resAll, tokens] = await Promise.all([
        startResource(scope, { issuer: authOn.url, cache: true, cpu: placement.server, env: SHEDDING_ON }),
        startResource(scope, { issuer: authOn.url, cache: true, cpu: placement.server, env: SHEDDING_TIGHT }),
        startResource(scope, { issuer: authOn.url, cache: true, cpu: placement.server }),
        startResource(scope, { issuer: authOn.url, cache: true, cpu: placement.server, env: SHEDDING_ALL }),
        serviceTokens(authOn.url, 1),
      ])
      const seconds = settings.quick ? 1 : Math.max(3, settings.seconds)
      const documents = (server: ServerHandle): LoadRequest => ({ kind: 'static', url: server.url, connections: settings.connections, method: 'GET', path: '/documents', headers: { authorization: `Bearer ${tokens[0]!}` } })
      const targets = [
        { id: 'token', on: ccRequest(authOn, settings.connections), tight: ccRequest(authTight, settings.connections), off: ccRequest(authOff, settings.connections), served: authOff, shedder: authAll, all: ccRequest(authAll, settings.connections) },
        { id: 'resource', on: documents(resOn), tight: documents(resTight), off: documents(resOff), served: resOff, shedder: resAll, all: documents(resAll) },
      ]
      const measurements: Measurement[] = []
      const ratios: Ratio[] = []
      const checks: Check[] = []
      const facts: Record<string, number | string> = {}
      for (const t of targets) {
        // What a refusal costs against serving: at 3 × capacity two of three requests must be refused in time.
        log(`  ${t.id}: CPU per response, served and shed`)
        const served = await cpuPerResponse(loader, t.served, t.off, seconds, settings.warmupSeconds)
        const shed = await cpuPerResponse(loader, t.shedder, t.all, seconds, settings.warmupSeconds)
        Object.assign(facts, { [`${t.id}_served_cpu_us`]: served.us, [`${t.id}_shed_cpu_us`]: shed.us, [`${t.id}_shed_over_served_cpu`]: shed.us / served.us })
        checks.push({ name: `overload/${t.id}/refusal: with every request shed, every response a 503`, ok: shed.result.completed > 0 && shed.result.statusCodes['503'] === shed.result.completed, detail: JSON.stringify(shed.result.statusCodes) })
        for (const mode of ['on', 'tight', 'off'] as const) {
          log(`  ${t.id}, shedding ${mode}`)
          const p = await phases(loader, pacer, t[mode], settings, seconds)
          const key = `${t.id}_${mode}`
          measurements.push(measurement(`${key}-unloaded`, `${t.id}, shedding ${mode}: 0.5 × capacity`, p.unloaded))
          measurements.push(measurement(`${key}-overload`, `${t.id}, shedding ${mode}: 3 × capacity offered (p99 of the 200s)`, p.overload))
          const p99 = p.unloaded.byStatus?.ok.p99 ?? 0
          const overloadP99 = p.overload.byStatus?.ok.p99 ?? 0
          Object.assign(facts, {
            [`${key}_capacity_rps`]: p.capacity,
            [`${key}_unloaded_p99_ms`]: p99,
            [`${key}_overload_ok_rps`]: (p.overload.byStatus?.ok.count ?? 0) / Math.max(p.overload.seconds, 1e-9),
            [`${key}_overload_ok_p99_ms`]: overloadP99,
            [`${key}_overload_ok_max_ms`]: p.overload.byStatus?.ok.max ?? 0,
            [`${key}_overload_shed_503`]: p.overload.byStatus?.shed.count ?? 0,
            [`${key}_overload_shed_p99_ms`]: p.overload.byStatus?.shed.p99 ?? 0,
            [`${key}_overload_timeouts`]: p.overload.timeouts,
            // How late the generator itself sent (its own timer and CPU): the part of the latencies above that is not the server's.
            [`${key}_overload_pacer_lag_p99_ms`]: p.overload.pacerLagP99 ?? 0,
            [`${key}_recovery_ms`]: Number.isFinite(p.recoveryMs) ? p.recoveryMs : 'not within the run',
          })
          for (const [phase, r] of [['unloaded', p.unloaded], ['overload', p.overload], ['recovery', p.recovery]] as const) {
            const other = Object.entries(r.statusCodes).filter(([code]) => !/^2\d\d$/.test(code) && code !== '503')
            checks.push({
              name: `overload/${key}/${phase}: every response a 2xx or a 503, no connection error`,
              ok: r.completed > 0 && other.length === 0 && r.errors === 0,
              detail: `${r.completed} responses, ${JSON.stringify(r.statusCodes)}, ${r.errors} errors, ${r.timeouts} timeouts`,
            })
          }
          if (mode === 'tight') {
            const value = p99 > 0 ? overloadP99 / p99 : Number.POSITIVE_INFINITY
            ratios.push({ id: t.id === 'token' ? '18a' : '18b', label: `${t.id}: p99 of accepted requests at 3 × capacity / unloaded p99 (OVERLOAD_MAX_QUEUE_MS=${TIGHT_QUEUE_MS})`, subject: `${key}-overload`, reference: `${key}-unloaded`, value, target: 2, bound: 'max', met: value <= 2 })
          }
        }
      }
      facts.windows_ms = WINDOW_MS
      facts.note = `one run per phase (${seconds} s), not rounds: an overload cannot be interleaved; medians of p99 are not taken`
      return { name: 'overload', measurements, ratios, checks, facts }
    } finally {
      await scope.close()
    }
  },
}
