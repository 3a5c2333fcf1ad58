import { randomBytes } from 'node:crypto'
import { monitorRedis } from '../../packages/test-harness/src/index.js'
import { familyKeys } from '../../services/auth/src/index.js'
import { sampleOf, withCpu, type BenchSettings, type Scenario } from '../lib/context.js'
import { cpuTimeMs } from '../lib/children.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { measureRounds, ranChecks, ratio, toMeasurement, type Check, type ScenarioResult, type Variant } from '../lib/measure.js'
import { profileAuth } from '../lib/profiling.js'
import { commandCalls, counterTotal, delta, scrape, settled } from '../lib/redis-stats.js'
import { APP_CLIENT, FORM, Scope, basic, logins, privateRedis, redisAdmin, startAuth, tokenRequest, type ServerHandle } from '../lib/stack.js'
import { ccRequest } from './client-credentials.js'

const ROTATIONS = 'gatehouse_refresh_rotations_total'

/** Refresh-token rotation load: each connection rotates a family of its own (load-worker.ts `chain`). */
export function chain(server: ServerHandle, refreshTokens: string[]): LoadRequest {
  return {
    kind: 'chain',
    url: server.url,
    connections: refreshTokens.length,
    path: '/token',
    headers: { authorization: basic(APP_CLIENT.id, APP_CLIENT.secret), 'content-type': FORM },
    refreshTokens,
  }
}

/** `<familyId>.<generation>.<mac>` (README: refresh tokens). */
function parseRefresh(token: string): { familyId: string; generation: number } {
  const [familyId = '', generation = ''] = token.split('.')
  return { familyId, generation: Number(generation) }
}

/**
 * Target 3: refresh-token rotation at `POST /token` against a real (private) Redis.
 *  - exactly one Redis round trip per rotation: a counting run under MONITOR (every command the
 *    service sends, by connection; commands a script runs are told apart), and INFO commandstats
 *    over every measured round (EVALSHA calls = rotations the service counted);
 *  - the rate, against client_credentials on the same service, measured alternately: ≥ 0.8;
 *  - Redis memory per family does not grow with its rotations (MEMORY USAGE of a family rotated
 *    once and of one rotated thousands of times; DBSIZE unchanged by a round of rotations).
 * Each connection rotates a family of its own, presenting the token the previous response gave
 * it; every round starts from fresh families (password logins, not measured).
 */
export const refreshScenario: Scenario = {
  name: 'refresh',
  title: 'auth service: refresh-token rotation against Redis (one round trip each)',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('refresh: starting redis, auth')
      const redis = await privateRedis(scope)
      const admin = await redisAdmin(scope, redis)
      const [auth, loader] = await Promise.all([
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server }),
        scope.own(Loader.start('load (refresh)', placement.load)),
      ])
      const c = settings.connections
      const checks: Check[] = []
      const facts: Record<string, number | string> = {}

      // 1. Counting run: every command the service sends while it rotates, from MONITOR.
      {
        const counted = settings.quick ? 100 : 1000
        // Every family rotates once first: the process's first rotation loads the script (EVALSHA
        // answered NOSCRIPT, then EVAL), and each user's record is read once into the directory
        // cache. What is counted is the steady state.
        const families: string[] = []
        for (const rt of await logins(auth.url, 10)) {
          families.push((await tokenRequest(auth.url, APP_CLIENT, { grant_type: 'refresh_token', refresh_token: rt })).refresh_token as string)
        }
        const monitor = await monitorRedis(redis.port)
        try {
          const mark = async (): Promise<void> => {
            const marker = `bench-${randomBytes(6).toString('hex')}`
            await admin.call('ECHO', marker)
            await monitor.waitFor((cmd) => cmd.args[0] === 'echo' && cmd.args[1] === marker, 10_000)
          }
          await mark()
          monitor.commands.splice(0)
          const r = await loader.run({ ...chain(auth, families), amount: counted, seconds: 0 })
          await mark()
          const seen = monitor.commands.splice(0)
          // The request path's connection is the one that sent the rotations; the service's
          // background connection (directory check, back-channel logout poll) is not counted.
          const requestPath = new Set(seen.filter((cmd) => cmd.args[0] === 'evalsha').map((cmd) => cmd.source))
          const fromService = seen.filter((cmd) => requestPath.has(cmd.source) && cmd.args[0] !== 'echo')
          const evalsha = fromService.filter((cmd) => cmd.args[0] === 'evalsha').length
          const others = fromService.filter((cmd) => cmd.args[0] !== 'evalsha')
          const byName: Record<string, number> = {}
          for (const cmd of others) byName[cmd.args[0]!] = (byName[cmd.args[0]!] ?? 0) + 1
          facts.counted_rotations = r.ok
          facts.redis_commands_per_rotation = r.ok > 0 ? fromService.length / r.ok : 0
          facts.redis_commands_per_rotation_detail = JSON.stringify({ evalsha, ...byName })
          checks.push({
            name: 'refresh: one Redis round trip (EVALSHA) per rotation, nothing else (MONITOR)',
            ok: r.ok === counted && r.non2xx === 0 && evalsha === counted && others.length === 0,
            detail: `${r.ok}/${counted} rotations answered 200; the service sent ${evalsha} EVALSHA and ${others.length} other commands ${JSON.stringify(byName)}`,
          })
        } finally {
          await monitor.close()
        }
      }

      // 2. Throughput, rotations against client_credentials, with commandstats over every round.
      let evalshaCalls = 0
      let rotations = 0
      let keysAdded = 0
      let latest: string[] = []
      const rotationsNow = async (): Promise<number> => counterTotal(await scrape(auth.url), ROTATIONS)
      const variants: Variant[] = [
        {
          name: 'refresh',
          what: 'POST /token refresh_token (rotation, Redis EVALSHA)',
          run: async (seconds) => {
            const families = await logins(auth.url, c)
            const stats = await commandCalls(admin)
            const counter = await rotationsNow()
            const keys = Number(await admin.call('DBSIZE'))
            const cpuBefore = await cpuTimeMs(auth.pid)
            const r = await loader.run({ ...chain(auth, families), seconds })
            // Requests still in flight when the load stopped finish on the server: wait for them.
            const after = await settled(rotationsNow, (a, b) => a === b)
            const d = delta(stats, await commandCalls(admin))
            evalshaCalls += d.evalsha ?? 0
            rotations += after - counter
            keysAdded += Number(await admin.call('DBSIZE')) - keys
            latest = r.refreshTokens ?? []
            const cpuAfter = await cpuTimeMs(auth.pid)
            const sample = { ...sampleOf(r), non2xx: r.non2xx + (r.broken ?? 0) }
            if (cpuBefore !== undefined && cpuAfter !== undefined && r.completed > 0) sample.cpuUs = ((cpuAfter - cpuBefore) * 1000) / r.completed
            return sample
          },
        },
        {
          name: 'cc',
          what: 'POST /token client_credentials (same service)',
          run: (seconds) => withCpu(auth.pid, async () => sampleOf(await loader.run({ ...ccRequest(auth, c), seconds }))),
        },
      ]
      const samples = await measureRounds(variants, settings)
      const measurements = variants.map((v) => toMeasurement(v, samples.get(v.name)!))
      const ratios = [ratio('3', 'refresh rotation / client_credentials', samples, 'refresh', 'cc', 0.8)]
      facts.measured_rotations = rotations
      facts.evalsha_calls = evalshaCalls
      checks.push({
        name: 'refresh: INFO commandstats: EVALSHA calls = rotations, over every measured round',
        ok: rotations > 0 && evalshaCalls === rotations,
        detail: `${evalshaCalls} EVALSHA for ${rotations} rotations counted by the service`,
      })
      checks.push({
        name: 'refresh: rotations add no Redis keys (DBSIZE unchanged across the rounds)',
        ok: keysAdded === 0,
        detail: `${keysAdded} keys added while rotating`,
      })
      checks.push(...ranChecks('refresh', measurements))

      // 3. Redis memory of a family, rotated once vs rotated the most.
      {
        const keys = familyKeys()
        const [fresh] = await logins(auth.url, 1)
        const once = (await tokenRequest(auth.url, APP_CLIENT, { grant_type: 'refresh_token', refresh_token: fresh! })).refresh_token as string
        const most = latest.map(parseRefresh).sort((a, b) => b.generation - a.generation)[0]
        const usage = async (familyId: string): Promise<number> => Number(await admin.call('MEMORY', 'USAGE', keys.family(familyId), 'SAMPLES', '0'))
        const onceBytes = await usage(parseRefresh(once).familyId)
        facts.family_bytes_after_1_rotation = onceBytes
        if (most !== undefined) {
          const mostBytes = await usage(most.familyId)
          facts.family_rotations_most = most.generation
          facts.family_bytes_after_most_rotations = mostBytes
          checks.push({
            name: 'refresh: Redis memory per family independent of its rotations (MEMORY USAGE)',
            // The generation is a decimal number in the hash: a few more digits, nothing else.
            ok: most.generation > 1 && mostBytes <= onceBytes + 16,
            detail: `${onceBytes} bytes after 1 rotation, ${mostBytes} bytes after ${most.generation} rotations`,
          })
        }
      }

      const profiles = await profileAuth(settings, 'refresh', 'refresh', redis.url, async (server) => {
        await loader.run({ ...chain(server, await logins(server.url, c)), seconds: settings.warmupSeconds })
        await loader.run({ ...chain(server, await logins(server.url, c)), seconds: settings.seconds })
      })
      return { name: 'refresh', measurements, ratios, checks, facts, profiles }
    } finally {
      await scope.close()
    }
  },
}
