import { sampleOf, withCpu, type BenchSettings, type Scenario } from '../lib/context.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { measureRounds, ranChecks, ratio, toMeasurement, type ScenarioResult, type Variant } from '../lib/measure.js'
import { profileSubject } from '../lib/profiling.js'
import { Scope, privateRedis, serviceTokens, startAuth, startResource, type ServerHandle } from '../lib/stack.js'

/**
 * Target 1 (issue 18's figures): the resource service's `GET /documents` with a valid token.
 *  - cache on, one token and a pool of 1,000 tokens, against `GET /bench/bare` of the same
 *    process (same plugins, logging, metrics, body; no auth): ≥ 0.95;
 *  - cache off (every request checks the RS256 signature), against `GET /bench/jose` of the same
 *    process (jose's jwtVerify called directly with a local JWKS): ≥ 1.5;
 *  - cache off, against `GET /bench/fast-jwt` of the same process (fast-jwt's verifier, its
 *    cache off: `node:crypto` called synchronously): ≥ 1.0.
 * The tokens are real ones, from the auth service's client_credentials grant.
 */
export const verifyScenario: Scenario = {
  name: 'verify',
  title: 'resource service: GET /documents with a valid token (verifier, cache on and off)',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('verify: starting redis, auth, resource (cache on), resource (cache off)')
      const redis = await privateRedis(scope)
      const auth = await startAuth(scope, { redisUrl: redis.url, cpu: placement.server })
      const [cached, uncached, loader, pool] = await Promise.all([
        startResource(scope, { issuer: auth.url, cache: true, cpu: placement.server }),
        startResource(scope, { issuer: auth.url, cache: false, cpu: placement.server }),
        scope.own(Loader.start('load (verify)', placement.load)),
        serviceTokens(auth.url, 1000),
      ])
      const token = pool[0]!
      const c = settings.connections

      const get = (server: ServerHandle, path: string, bearer: string | null): LoadRequest => ({
        kind: 'static',
        url: server.url,
        connections: c,
        method: 'GET',
        path,
        headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` },
      })
      const variant = (name: string, what: string, spec: LoadRequest, server: ServerHandle): Variant => ({
        name,
        what,
        run: (seconds) => withCpu(server.pid, async () => sampleOf(await loader.run({ ...spec, seconds }))),
      })
      const variants: Variant[] = [
        variant('bare', 'GET /bench/bare, no auth (same service, same body)', get(cached, '/bench/bare', null), cached),
        variant('cached-one', 'GET /documents, cache on, one token', get(cached, '/documents', token), cached),
        variant('cached-pool', 'GET /documents, cache on, pool of 1,000 tokens', { kind: 'pool', url: cached.url, connections: c, path: '/documents', tokens: pool }, cached),
        variant('uncached', 'GET /documents, cache off (RS256 check per request)', get(uncached, '/documents', token), uncached),
        variant('jose', 'GET /bench/jose: jose jwtVerify directly, local JWKS', get(uncached, '/bench/jose', token), uncached),
        variant('fast-jwt', 'GET /bench/fast-jwt: fast-jwt createVerifier directly, cache off, PEM key', get(uncached, '/bench/fast-jwt', token), uncached),
      ]
      const samples = await measureRounds(variants, settings)
      const measurements = variants.map((v) => toMeasurement(v, samples.get(v.name)!))
      const ratios = [
        ratio('1a', 'verify, cache on, one token / bare route', samples, 'cached-one', 'bare', 0.95),
        ratio('1b', 'verify, cache on, 1,000 tokens / bare route', samples, 'cached-pool', 'bare', 0.95),
        ratio('1c', 'verify, cache off / jose jwtVerify route', samples, 'uncached', 'jose', 1.5),
        ratio('1d', 'verify, cache off / fast-jwt route (its cache off)', samples, 'uncached', 'fast-jwt', 1.0),
      ]
      const checks = ranChecks('verify', measurements)

      const profiles: string[] = []
      if (settings.profile) {
        for (const [subject, cache, path, kind] of [
          ['cached-pool', true, '/documents', 'pool'],
          ['uncached', false, '/documents', 'static'],
          ['bare', true, '/bench/bare', 'static'],
        ] as const) {
          log(`verify: profiling ${subject}`)
          profiles.push(
            await profileSubject(
              'verify',
              subject,
              settings.seconds,
              (s, nodeFlags) => startResource(s, { issuer: auth.url, cache, cpu: placement.server, nodeFlags }),
              async (server) => {
                const spec = kind === 'pool' ? { kind, url: server.url, connections: c, path, tokens: pool } : get(server, path, subject === 'bare' ? null : token)
                await loader.run({ ...spec, seconds: settings.warmupSeconds })
                await loader.run({ ...spec, seconds: settings.seconds })
              },
            ),
          )
        }
      }
      return { name: 'verify', measurements, ratios, checks, facts: { tokens_in_pool: pool.length }, profiles }
    } finally {
      await scope.close()
    }
  },
}
