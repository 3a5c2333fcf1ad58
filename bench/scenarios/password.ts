import { sampleOf, withCpu, type BenchSettings, type Scenario } from '../lib/context.js'
import { CpuWorker } from '../lib/cpu.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { measureRounds, ranChecks, ratio, toMeasurement, type ScenarioResult, type Variant } from '../lib/measure.js'
import { profileAuth } from '../lib/profiling.js'
import { commandCalls, counterTotal, delta, scrape } from '../lib/redis-stats.js'
import { APP_CLIENT, FORM, Scope, USERS, basic, privateRedis, redisAdmin, startAuth, type ServerHandle } from '../lib/stack.js'

/** One connection per benchmark user: parallel logins, never two of one user at a time. */
const CONNECTIONS = USERS.length

export function passwordLogins(server: ServerHandle): LoadRequest {
  return {
    kind: 'forms',
    url: server.url,
    connections: CONNECTIONS,
    path: '/token',
    headers: { authorization: basic(APP_CLIENT.id, APP_CLIENT.secret), 'content-type': FORM },
    bodies: USERS.map((u) => new URLSearchParams({ grant_type: 'password', username: u.username, password: u.password }).toString()),
  }
}

/**
 * Target 4: the password grant is bounded by its KDF by design (argon2id, OWASP parameters;
 * DESIGN §8). Its rate against the KDF alone (the service's own verifyPassword, as many in
 * parallel as there are connections, on the same CPU): ≥ 0.9. Also reports the Redis commands a
 * login costs (attempt limiter, refresh family).
 */
export const passwordScenario: Scenario = {
  name: 'password',
  title: 'auth service: POST /token password grant vs the argon2id KDF alone',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('password: starting redis, auth')
      const redis = await privateRedis(scope)
      const admin = await redisAdmin(scope, redis)
      const [auth, loader, cpu] = await Promise.all([
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server }),
        scope.own(Loader.start('load (password)', placement.load)),
        scope.own(CpuWorker.start(placement.server)),
      ])

      let logins = 0
      const commands: Record<string, number> = {}
      const variants: Variant[] = [
        {
          name: 'password',
          what: `POST /token password grant (${CONNECTIONS} users in parallel)`,
          run: (seconds) =>
            withCpu(auth.pid, async () => {
              const before = await commandCalls(admin)
              const r = await loader.run({ ...passwordLogins(auth), seconds })
              for (const [k, v] of Object.entries(delta(before, await commandCalls(admin)))) commands[k] = (commands[k] ?? 0) + v
              logins += r.ok
              return sampleOf(r)
            }),
        },
        {
          name: 'kdf',
          what: `argon2id verify alone (m=19 MiB, t=2, p=1; ${CONNECTIONS} in parallel)`,
          unit: 'ops/s',
          run: (seconds) =>
            withCpu(cpu.pid, async () => {
              const r = await cpu.run({ kind: 'kdf', seconds, concurrency: CONNECTIONS })
              return { rate: r.rate, count: r.ops }
            }),
        },
      ]
      const samples = await measureRounds(variants, settings)
      const measurements = variants.map((v) => toMeasurement(v, samples.get(v.name)!))
      const ratios = [ratio('4', 'password grant / argon2id KDF alone', samples, 'password', 'kdf', 0.9)]
      const metrics = await scrape(auth.url)
      const failures = ['gatehouse_login_failures_total', 'gatehouse_login_throttled_total', 'gatehouse_login_lockouts_total', 'gatehouse_login_delayed_total'].reduce((n, name) => n + counterTotal(metrics, name), 0)
      // Commands a script runs are counted in commandstats too: report the calls the service made
      // (EVALSHA/EVAL and plain commands) apart from those.
      const scripted = (commands.evalsha ?? 0) + (commands.eval ?? 0)
      const facts: Record<string, number | string> = {
        logins,
        redis_script_calls_per_login: logins > 0 ? scripted / logins : 0,
        redis_commandstats_per_login: JSON.stringify(Object.fromEntries(Object.entries(commands).filter(([k]) => k !== 'info').map(([k, v]) => [k, Number((v / Math.max(1, logins)).toFixed(2))]))),
      }
      const checks = ranChecks('password', measurements)
      checks.push({ name: 'password: no login refused, delayed or locked out', ok: failures === 0, detail: `${failures} failed, throttled or locked-out attempts` })
      const profiles = await profileAuth(settings, 'password', 'password', redis.url, async (server) => {
        await loader.run({ ...passwordLogins(server), seconds: settings.seconds })
      })
      return { name: 'password', measurements, ratios, checks, facts, profiles }
    } finally {
      await scope.close()
    }
  },
}
