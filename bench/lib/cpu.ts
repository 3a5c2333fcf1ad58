import { spawnChild, type Child } from './children.js'
import type { CpuJob, CpuResult } from './cpu-worker.js'

export type { CpuJob, CpuResult }

/** A CPU-reference process (cpu-worker.ts), pinned to the servers' CPU. */
export class CpuWorker {
  readonly #child: Child

  private constructor(child: Child) {
    this.#child = child
  }

  static async start(cpu: number | undefined): Promise<CpuWorker> {
    const child = spawnChild('cpu-reference', { script: 'bench/lib/cpu-worker.ts', cpu })
    await child.waitFor((m) => m.type === 'ready', 30_000)
    return new CpuWorker(child)
  }

  get pid(): number {
    return this.#child.pid
  }

  async run(job: CpuJob): Promise<CpuResult> {
    const reply = await this.#child.request<{ result: CpuResult }>({ type: 'run', input: job }, job.seconds * 1000 + 60_000)
    return reply.result
  }

  async stop(): Promise<void> {
    await this.#child.stop()
  }
}
