import { sampleOf, withCpu, type BenchSettings, type Scenario } from '../lib/context.js'
import { CpuWorker } from '../lib/cpu.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { measureRounds, ranChecks, ratio, toMeasurement, type ScenarioResult, type Variant } from '../lib/measure.js'
import { profileAuth } from '../lib/profiling.js'
import { CC_CLIENT, FORM, Scope, basic, privateRedis, startAuth, startOidcProvider, type ServerHandle } from '../lib/stack.js'

/** The client_credentials request both servers get: HTTP Basic client authentication, one scope. */
export function ccRequest(server: ServerHandle, connections: number): LoadRequest {
  return {
    kind: 'static',
    url: server.url,
    connections,
    method: 'POST',
    path: '/token',
    headers: { authorization: basic(CC_CLIENT.id, CC_CLIENT.secret), 'content-type': FORM },
    body: 'grant_type=client_credentials&scope=documents%3Aread',
  }
}

/**
 * Target 2: the auth service's `POST /token` with `client_credentials` (HTTP Basic, RS256 JWT
 * access token), against raw jose RS256 signing on the same CPU (≥ 0.85) and node-oidc-provider's
 * token endpoint doing the same grant and token format (≥ 1.5). Raw node:crypto signing is
 * reported too, and a lean fastify endpoint (servers/lean-cc.ts): the floor that fastify, HTTP and
 * the signature set on this machine, with its ratios as facts.
 */
export const clientCredentialsScenario: Scenario = {
  name: 'cc',
  title: 'auth service: POST /token client_credentials vs raw signing and node-oidc-provider',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('cc: starting redis, auth, node-oidc-provider, the lean floor')
      const redis = await privateRedis(scope)
      const [auth, op, lean, loader, cpu] = await Promise.all([
        startAuth(scope, { redisUrl: redis.url, cpu: placement.server }),
        startOidcProvider(scope, { cpu: placement.server }),
        startOidcProvider(scope, { cpu: placement.server, lean: true }),
        scope.own(Loader.start('load (cc)', placement.load)),
        scope.own(CpuWorker.start(placement.server)),
      ])
      const c = settings.connections

      const http = (name: string, what: string, server: ServerHandle): Variant => ({
        name,
        what,
        run: (seconds) => withCpu(server.pid, async () => sampleOf(await loader.run({ ...ccRequest(server, c), seconds }))),
      })
      const signing = (name: string, what: string, kind: 'sign-jose' | 'sign-node'): Variant => ({
        name,
        what,
        unit: 'ops/s',
        run: (seconds) =>
          withCpu(cpu.pid, async () => {
            const r = await cpu.run({ kind, seconds })
            return { rate: r.rate, count: r.ops }
          }),
      })
      const variants: Variant[] = [
        http('gatehouse', 'POST /token client_credentials (Gatehouse)', auth),
        http('oidc-provider', 'POST /token client_credentials (node-oidc-provider 9, JWT access token)', op),
        http('lean', 'the floor, not a product: bare fastify, form parse, secret check, node:crypto RS256 sign, no logging', lean),
        signing('jose-sign', 'raw jose RS256 signing (SignJWT, one at a time, one CPU)', 'sign-jose'),
        signing('node-sign', 'raw node:crypto RS256 signing (crypto.sign, one CPU)', 'sign-node'),
      ]
      const samples = await measureRounds(variants, settings)
      const measurements = variants.map((v) => toMeasurement(v, samples.get(v.name)!))
      const ratios = [
        ratio('2a', 'client_credentials / raw jose RS256 signing', samples, 'gatehouse', 'jose-sign', 0.85),
        ratio('2b', 'client_credentials / node-oidc-provider', samples, 'gatehouse', 'oidc-provider', 1.5),
      ]
      // Not targets: where the floor itself lands against the same references, and how much of it
      // Gatehouse keeps (what fastify and HTTP leave of the raw signing rate on this machine).
      const floor = (subject: string, reference: string): number => ratio('', '', samples, subject, reference, 0).value
      const facts = {
        lean_vs_jose_sign: floor('lean', 'jose-sign'),
        lean_vs_oidc_provider: floor('lean', 'oidc-provider'),
        gatehouse_vs_lean: floor('gatehouse', 'lean'),
      }
      const checks = ranChecks('cc', measurements)
      const profiles = await profileAuth(settings, 'cc', 'gatehouse', redis.url, async (server) => {
        await loader.run({ ...ccRequest(server, c), seconds: settings.warmupSeconds })
        await loader.run({ ...ccRequest(server, c), seconds: settings.seconds })
      })
      return { name: 'cc', measurements, ratios, checks, facts, profiles }
    } finally {
      await scope.close()
    }
  },
}
