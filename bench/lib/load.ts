import { spawnChild, type Child } from './children.js'

interface Target {
  /** Several URLs (replicas): connection i goes to url i mod n (autocannon); keep connections a multiple of n. */
  url: string | string[]
  connections: number
  /** Stop after exactly this many responses instead of after `seconds` (counting runs). */
  amount?: number
  /** Requests per second over all connections (default: as fast as the server answers). */
  overallRate?: number
  /** `static` only: record every response's status and latency (`byStatus`, `windows`). */
  timeline?: boolean
}

/** What to send, to whom (the request shapes are described in load-worker.ts). */
export type LoadRequest = Target &
  (
    | { kind: 'static'; method: 'GET' | 'POST'; path: string; headers: Record<string, string>; body?: string }
    | { kind: 'pool'; path: string; tokens: string[] }
    | { kind: 'forms'; path: string; headers: Record<string, string>; bodies: string[] }
    | { kind: 'chain'; path: string; headers: Record<string, string>; refreshTokens: string[] }
    | {
        kind: 'dpop'
        path: string
        /** The DPoP-bound access token, sent as `Authorization: DPoP`. */
        token: string
        /** The proof key: a private EC P-256 JWK (ES256). */
        privateJwk: Record<string, unknown>
        /** Requests per second to make proofs for before a run has measured the rate (above what a core can verify, so a 1 s quick run never runs out). */
        expectedRate: number
      }
  )

/** A request shape and how long to send it (ignored with `amount`). */
export type LoadSpec = LoadRequest & { seconds: number }

export interface LoadResult {
  /** Responses received. */
  completed: number
  ok: number
  non2xx: number
  /** Connection errors. */
  errors: number
  timeouts: number
  seconds: number
  /** Responses per second. */
  rps: number
  latencyP50: number
  latencyP99: number
  statusCodes: Record<string, number>
  /** `chain`: each connection's latest refresh token. */
  refreshTokens?: string[]
  /** `chain`: responses that broke a chain (not 200, or no refresh token). */
  broken?: number
  /** `dpop`: proofs made before the run (outside the measured loop), and made during it when those ran out. */
  proofsBefore?: number
  proofsDuring?: number
  /** With `timeline`: the 2xx responses' latency (ms) and the shed ones' (503). */
  byStatus?: { ok: LatencySummary; shed: LatencySummary }
  /** With `timeline`: responses per WINDOW_MS window from the start, 2xx and 503. */
  windows?: { ok: number; shed: number }[]
}

export interface LatencySummary {
  count: number
  p50: number
  p99: number
  max: number
}

/** The timeline's window. */
export const WINDOW_MS = 250

/** A load-generator process (load-worker.ts) on its own CPU. */
export class Loader {
  readonly #child: Child

  private constructor(child: Child) {
    this.#child = child
  }

  static async start(name: string, cpu: number | undefined): Promise<Loader> {
    const child = spawnChild(name, { script: 'bench/lib/load-worker.ts', cpu })
    await child.waitFor((m) => m.type === 'ready', 30_000)
    return new Loader(child)
  }

  get pid(): number {
    return this.#child.pid
  }

  async run(spec: LoadSpec): Promise<LoadResult> {
    const bound = (spec.amount === undefined ? spec.seconds * 1000 : 120_000) + 30_000
    const reply = await this.#child.request<{ result: LoadResult }>({ type: 'run', input: spec }, bound)
    return reply.result
  }

  async stop(): Promise<void> {
    await this.#child.stop()
  }
}
