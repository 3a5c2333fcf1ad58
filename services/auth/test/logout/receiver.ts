import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** A request a receiver got. */
export interface Received {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

/**
 * A relying party's back-channel logout endpoint: a real HTTP server on 127.0.0.1 (port 0) that
 * records every request and answers with `handler` (200 by default).
 */
export class Receiver {
  readonly requests: Received[] = []
  handler: (req: Received, res: ServerResponse) => void = (_req, res) => res.writeHead(200).end()
  readonly #server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      this.requests.push(r)
      const waiters = this.#waiters.splice(0)
      for (const w of waiters) w()
      this.handler(r, res)
    })
  })
  readonly #waiters: Array<() => void> = []
  #open = new Set<import('node:net').Socket>()

  static async start(): Promise<Receiver> {
    const r = new Receiver()
    r.#server.on('connection', (s) => {
      r.#open.add(s)
      s.on('close', () => r.#open.delete(s))
    })
    await new Promise<void>((resolve) => r.#server.listen(0, '127.0.0.1', resolve))
    return r
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/backchannel-logout`
  }

  /** Resolves once `n` requests have arrived (bounded: rejects after `timeoutMs` of real time). */
  async received(n: number, timeoutMs = 10_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs
    while (this.requests.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} requests, got ${this.requests.length}`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 100).unref()
      })
    }
    return this.requests
  }

  async close(): Promise<void> {
    for (const s of this.#open) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** Timers fired by hand: the worker's per-attempt timeout and poll loop without waiting. */
export class ManualTimers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>()
  #next = 1
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.#next++
    this.pending.set(id, { fn, ms })
    return id
  }
  clearTimeout = (handle: unknown): void => {
    this.pending.delete(handle as number)
  }
  /** Fires every pending timer set for `ms`; returns how many. */
  fire(ms: number): number {
    const due = [...this.pending.entries()].filter(([, t]) => t.ms === ms)
    for (const [id, t] of due) {
      this.pending.delete(id)
      t.fn()
    }
    return due.length
  }
}

/** The promise, or a rejection after `ms` of real time: a guard so a broken defence fails instead of hanging. */
export async function bounded<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, guard])
  } finally {
    clearTimeout(timer)
  }
}
