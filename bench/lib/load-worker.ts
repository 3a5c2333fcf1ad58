import { createPrivateKey } from 'node:crypto'
import autocannon, { type Client, type Request, type Result } from 'autocannon'
import { dpopProof, type DpopKey } from '../../packages/test-harness/src/index.js'
import { serveRuns } from './children.js'
import type { LoadResult, LoadSpec } from './load.js'

/**
 * The load generator: a child process of its own (pinned to the other CPU where possible) that
 * runs autocannon on request and answers with a summary. Long-lived, so a scenario's rounds do not
 * each pay a process start.
 *
 * Request shapes (LoadSpec.kind):
 *  - `static`: the same request every time (one token, a form body, a bare route);
 *  - `pool`: GET with one of N bearer tokens, each connection cycling through its own share of
 *    them, so the verifier sees a working set of N distinct tokens;
 *  - `chain`: the refresh-token rotation. Each connection holds a family of its own and presents
 *    the refresh token of the previous response (autocannon calls onResponse, then builds the next
 *    request through setupRequest), so every request is a genuine rotation, never a reuse;
 *  - `forms`: POST with one form body per connection (the password grant, one user each);
 *  - `dpop`: GET with one DPoP-bound token and a fresh ES256 proof per request (unique `jti`, RFC
 *    9449 §11.1). The proofs are made before autocannon starts (outside the measured loop): as
 *    many as the last run's rate × seconds × 2; should they run out, more are made on the fly
 *    and counted (`proofsDuring`), so a run never replays a proof.
 */

/** The rate the last `dpop` run reached, to size the next run's proofs. */
let lastDpopRate = 0

function summarize(r: Result, extra: Partial<LoadResult> = {}): LoadResult {
  const statusCodes: Record<string, number> = {}
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = v.count
  const completed = Object.values(statusCodes).reduce((a, b) => a + b, 0)
  return {
    completed,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    seconds: r.duration,
    rps: r.duration > 0 ? completed / r.duration : 0,
    latencyP50: r.latency.p50,
    latencyP99: r.latency.p99,
    statusCodes,
    ...extra,
  }
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const base = {
    url: spec.url,
    connections: spec.connections,
    timeout: 10,
    ...(spec.amount === undefined ? { duration: spec.seconds } : { amount: spec.amount }),
  }
  switch (spec.kind) {
    case 'static': {
      return summarize(await autocannon({ ...base, method: spec.method, headers: spec.headers, ...(spec.body === undefined ? {} : { body: spec.body }), requests: [{ path: spec.path }] }))
    }
    case 'pool': {
      // Connection i cycles through its own slice of the pool: every token is in use, and the
      // load generator builds each request once (not once per connection).
      const size = Math.ceil(spec.tokens.length / spec.connections)
      let n = 0
      const setupClient = (client: Client): void => {
        const from = ((n++ % spec.connections) * size) % spec.tokens.length
        const slice = [...spec.tokens, ...spec.tokens].slice(from, from + size)
        client.setRequests(slice.map((t): Request => ({ method: 'GET', path: spec.path, headers: { authorization: `Bearer ${t}` } })))
      }
      return summarize(await autocannon({ ...base, setupClient }))
    }
    case 'forms': {
      let n = 0
      const setupClient = (client: Client): void => {
        const body = spec.bodies[n++ % spec.bodies.length]!
        client.setRequests([{ method: 'POST', path: spec.path, headers: spec.headers, body }])
      }
      return summarize(await autocannon({ ...base, setupClient }))
    }
    case 'dpop': {
      const jwk = spec.privateJwk as { kty: string; crv: string; x: string; y: string }
      const key: DpopKey = { alg: 'ES256', privateKey: createPrivateKey({ key: jwk, format: 'jwk' }), jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, jkt: '' }
      const htu = `${Array.isArray(spec.url) ? spec.url[0]! : spec.url}${spec.path}`
      const make = (): string => dpopProof({ key, htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), accessToken: spec.token })
      const n = spec.amount ?? Math.ceil((lastDpopRate > 0 ? lastDpopRate * 2 : spec.expectedRate) * spec.seconds) + 1000
      const proofs = Array.from({ length: n }, make)
      let next = 0
      let during = 0
      const authorization = `DPoP ${spec.token}`
      const setupClient = (client: Client): void => {
        client.setRequests([
          {
            method: 'GET',
            path: spec.path,
            setupRequest: (req) => {
              let dpop = proofs[next++]
              if (dpop === undefined) {
                during++
                dpop = make()
              }
              return { ...req, headers: { authorization, dpop } }
            },
          },
        ])
      }
      const r = summarize(await autocannon({ ...base, setupClient }), { proofsBefore: n, proofsDuring: during })
      if (spec.amount === undefined) lastDpopRate = r.rps
      return r
    }
    case 'chain': {
      // One refresh token per connection; the latest one each connection received, handed back
      // so the caller can look the families up afterwards.
      const latest = [...spec.refreshTokens]
      let n = 0
      let broken = 0
      const setupClient = (client: Client): void => {
        const slot = n++ % latest.length
        client.setRequests([
          {
            method: 'POST',
            path: spec.path,
            headers: spec.headers,
            setupRequest: (req) => ({ ...req, body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(latest[slot]!)}` }),
            onResponse: (status, body) => {
              if (status !== 200) {
                broken++
                return
              }
              const next = (JSON.parse(body) as { refresh_token?: unknown }).refresh_token
              if (typeof next === 'string') latest[slot] = next
              else broken++
            },
          },
        ])
      }
      return summarize(await autocannon({ ...base, setupClient }), { refreshTokens: latest, broken })
    }
  }
}

serveRuns(run)
