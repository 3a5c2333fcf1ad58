import { sampleOf, withCpu, type BenchSettings, type Scenario } from '../lib/context.js'
import { Loader, type LoadRequest } from '../lib/load.js'
import { measureRounds, ranChecks, ratio, toMeasurement, type ScenarioResult, type Variant } from '../lib/measure.js'
import { Scope, startResource } from '../lib/stack.js'
import { makeDpopKey, startFakeIssuer } from '../../packages/test-harness/src/index.js'

/**
 * Target 14 (issue 14): the resource service's `GET /documents` with a DPoP-bound token and a
 * fresh ES256 proof per request (RFC 9449 §7: proof signature, `htm`/`htu`/`iat`/`ath`, key
 * binding and the single-use `jti` in the replay cache), the token itself served from the
 * verified-token cache, against the same request with a cached Bearer token, same process, same
 * round: ≥ 0.6. The proofs are made by the load generator before each run (load-worker.ts).
 *
 * The tokens come from the test kit's issuer (RS256, the auth service's algorithm) rather than the
 * auth service: both tokens are minted alike, one with `cnf.jkt`, so only DPoP differs.
 */
export const dpopScenario: Scenario = {
  name: 'dpop',
  title: 'resource service: GET /documents with a DPoP-bound token and a fresh ES256 proof vs a cached Bearer token',
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const scope = new Scope()
    try {
      log('dpop: starting an issuer, the resource service (cache on) and the load generator')
      const issuer = await startFakeIssuer()
      scope.add(() => issuer.close())
      const key = makeDpopKey('ES256')
      const privateJwk = key.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
      const [server, loader] = await Promise.all([
        startResource(scope, { issuer: issuer.issuer, cache: true, cpu: placement.server }),
        scope.own(Loader.start('load (dpop)', placement.load)),
      ])
      const bearerToken = issuer.userToken()
      const dpopToken = issuer.userToken({ cnf: { jkt: key.jkt } })
      const c = settings.connections

      const bearer: LoadRequest = { kind: 'static', url: server.url, connections: c, method: 'GET', path: '/documents', headers: { authorization: `Bearer ${bearerToken}` } }
      const dpop: LoadRequest = { kind: 'dpop', url: server.url, connections: c, path: '/documents', token: dpopToken, privateJwk, expectedRate: 20_000 }
      let proofsBefore = 0
      let proofsDuring = 0
      const variants: Variant[] = [
        {
          name: 'bearer',
          what: 'GET /documents, Bearer, token cached',
          run: (seconds) => withCpu(server.pid, async () => sampleOf(await loader.run({ ...bearer, seconds }))),
        },
        {
          name: 'dpop',
          what: 'GET /documents, DPoP, token cached, fresh ES256 proof',
          run: (seconds) =>
            withCpu(server.pid, async () => {
              const r = await loader.run({ ...dpop, seconds })
              proofsBefore += r.proofsBefore ?? 0
              proofsDuring += r.proofsDuring ?? 0
              return sampleOf(r)
            }),
        },
      ]
      const samples = await measureRounds(variants, settings)
      const measurements = variants.map((v) => toMeasurement(v, samples.get(v.name)!))
      const ratios = [ratio('14', 'DPoP request (ES256 proof, token cached) / cached Bearer request', samples, 'dpop', 'bearer', 0.6)]
      const checks = ranChecks('dpop', measurements)
      return {
        name: 'dpop',
        measurements,
        ratios,
        checks,
        facts: { proofs_made_before_runs: proofsBefore, proofs_made_during_runs: proofsDuring },
      }
    } finally {
      await scope.close()
    }
  },
}
