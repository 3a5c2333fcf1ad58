import { performance } from 'node:perf_hooks'
import { spawnChild, type Child } from './children.js'

interface Target {
  /** Several URLs (replicas): connection i goes to url i mod n (autocannon); keep connections a multiple of n. */
  url: string | string[]
  connections: number
  /** Stop after exactly this many responses instead of after `seconds` (counting runs). */
  amount?: number
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
  /** Paced runs (paced-worker.ts): the 2xx responses' latency (ms) and the shed ones' (503). */
  byStatus?: { ok: LatencySummary; shed: LatencySummary }
  /** Paced runs: responses per WINDOW_MS window from the start, 2xx and 503. */
  windows?: { ok: number; shed: number }[]
  /** Paced runs (paced-worker.ts): p99 of how late the generator sent a request it had a connection for (ms). */
  pacerLagP99?: number
}

export interface LatencySummary {
  count: number
  p50: number
  p99: number
  max: number
}

/** The timeline's window. */
export const WINDOW_MS = 250

/**
 * Every response's status and latency, so the 2xx latency of an overloaded run is not mixed with
 * the instant 503s, and a timeline of WINDOW_MS windows from `restart()`.
 */
export class StatusTimeline {
  #started = performance.now()
  readonly #ok: number[] = []
  readonly #shed: number[] = []
  readonly #windows: { ok: number; shed: number }[] = []
  readonly #codes: Record<string, number> = {}

  restart(): void {
    this.#started = performance.now()
  }

  record(status: number, latencyMs: number): void {
    this.#codes[status] = (this.#codes[status] ?? 0) + 1
    const w = Math.max(0, Math.floor((performance.now() - this.#started) / WINDOW_MS))
    while (this.#windows.length <= w) this.#windows.push({ ok: 0, shed: 0 })
    if (status >= 200 && status < 300) {
      this.#ok.push(latencyMs)
      this.#windows[w]!.ok++
    } else if (status === 503) {
      this.#shed.push(latencyMs)
      this.#windows[w]!.shed++
    }
  }

  latencies(): number[] {
    return [...this.#ok, ...this.#shed]
  }

  result(): Required<Pick<LoadResult, 'byStatus' | 'windows' | 'statusCodes'>> {
    return { statusCodes: { ...this.#codes }, byStatus: { ok: latencySummary(this.#ok), shed: latencySummary(this.#shed) }, windows: this.#windows.map((w) => ({ ...w })) }
  }
}

/** Count, median, p99 and maximum of latencies (ms). */
export function latencySummary(xs: number[]): LatencySummary {
  if (xs.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 }
  const sorted = [...xs].sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! }
}

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
