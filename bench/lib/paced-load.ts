import { spawnChild, type Child } from './children.js'
import type { LoadResult } from './load.js'

/** One request, sent at an even pace (paced-worker.ts). */
export interface PacedSpec {
  url: string
  method: 'GET' | 'POST'
  path: string
  headers: Record<string, string>
  body?: string
  /** Requests per second, scheduled one every 1/rate s. */
  rate: number
  seconds: number
  /** Keep-alive connections (a scheduled request waits for an idle one). */
  connections: number
  /** How long what is in flight at the end may take before it counts as a timeout (ms). */
  timeoutMs?: number
}

/** The open-loop load generator (paced-worker.ts), a process of its own on the load generators' CPU. */
export class PacedLoader {
  readonly #child: Child

  private constructor(child: Child) {
    this.#child = child
  }

  static async start(name: string, cpu: number | undefined): Promise<PacedLoader> {
    const child = spawnChild(name, { script: 'bench/lib/paced-worker.ts', cpu })
    await child.waitFor((m) => m.type === 'ready', 30_000)
    return new PacedLoader(child)
  }

  async run(spec: PacedSpec): Promise<LoadResult> {
    const reply = await this.#child.request<{ result: LoadResult }>({ type: 'run', input: spec }, spec.seconds * 1000 + (spec.timeoutMs ?? 5000) + 30_000)
    return reply.result
  }

  async stop(): Promise<void> {
    await this.#child.stop()
  }
}
