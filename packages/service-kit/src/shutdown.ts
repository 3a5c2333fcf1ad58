import type { FastifyInstance } from 'fastify'
import { flushTracing } from './tracing.js'

export interface GracefulShutdownOptions {
  /** Runs first, e.g. to turn readiness false so load balancers stop sending traffic. */
  onStart?: () => void
  /** Wait this long after `onStart` before closing, for load balancers to notice (default 0). */
  drainDelayMs?: number
  /** In-flight requests get this long to finish before the process gives up (default 10 s). */
  timeoutMs?: number
  signals?: readonly NodeJS.Signals[]
  /** Injected for tests (default `process.exit`). */
  exit?: (code: number) => void
}

/**
 * SIGTERM/SIGINT handling for a listening fastify service: readiness false,
 * stop accepting, let in-flight requests finish (fastify's close, which also
 * runs onClose hooks: Redis connections and the like), then exit 0; exit 1
 * if that takes longer than the bound. Call it before `listen` (it adds a
 * hook). Returns a function that removes the signal handlers.
 */
export function installGracefulShutdown(app: FastifyInstance, options: GracefulShutdownOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  const hardExit = options.exit ?? ((code: number) => process.exit(code))
  // pino may buffer lines: flush them first so the last requests and `service.stopped` are not
  // lost with the process (bounded, in case the destination never answers).
  // Then the spans still batched for the collector (tracing on; at once when off), both bounded.
  const exit = (code: number): void => {
    const log = app.log as { flush?: (cb?: (err?: Error) => void) => void }
    let done = false
    const leave = (): void => {
      if (done) return
      done = true
      hardExit(code)
    }
    const fallback = setTimeout(leave, 1000)
    const flushed = (): void => {
      void flushTracing().then(() => {
        clearTimeout(fallback)
        leave()
      })
    }
    if (typeof log.flush !== 'function') return flushed()
    log.flush(flushed)
  }
  let stopping = false
  // A response finished while draining tells the client to close the connection (RFC 9112 §9.6).
  // close() only ends the keep-alive connections idle at that moment; one whose request was still
  // in flight would otherwise stay open after its response and hold the process until the
  // keep-alive timeout. (Hence: install before listen, while hooks can still be added.)
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (stopping) void reply.header('connection', 'close')
    done(null, payload)
  })

  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) return
    stopping = true
    options.onStart?.()
    app.log.info({ event: 'service.stopping', signal }, 'shutting down')
    const timer = setTimeout(() => {
      app.log.error({ event: 'service.stop_timeout' }, 'in-flight requests did not finish in time')
      exit(1)
    }, options.timeoutMs ?? 10_000)
    timer.unref()
    try {
      if ((options.drainDelayMs ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, options.drainDelayMs))
      await app.close()
      clearTimeout(timer)
      app.log.info({ event: 'service.stopped' }, 'stopped')
      exit(0)
    } catch (err) {
      app.log.error({ err }, 'shutdown failed')
      exit(1)
    }
  }
  const handlers = signals.map((signal) => {
    const handler = (): void => void shutdown(signal)
    process.on(signal, handler)
    return [signal, handler] as const
  })
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler)
  }
}
