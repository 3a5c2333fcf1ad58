import { performance } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import fp from 'fastify-plugin'
import { Counter, type Registry } from 'prom-client'
import underPressure, { type FastifyUnderPressureOptions as UnderPressureOptions } from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EnvReader } from './config.js'
import { TemporarilyUnavailable } from './errors.js'

/**
 * Load shedding (both services read and apply it the same way): past the point where the process
 * can keep up, a request is answered at once with `503` and `Retry-After` instead of joining a
 * queue that only grows, so the requests that are accepted keep their latency and the process
 * recovers as soon as the load drops. Measured by @fastify/under-pressure every SAMPLE_INTERVAL_MS:
 * the mean event-loop delay of the last interval and the V8 heap in use.
 *
 * Health, readiness and metrics routes are never shed (`config: { overload: 'exempt' }` on a
 * route): an orchestrator must not restart, nor a balancer drop, a replica for being busy.
 *
 * Shedding by those two starts only once a limit has been exceeded for SUSTAINED_SAMPLES samples
 * in a row, so one blocking moment (start-up, a long GC pause, the host descheduling the process)
 * never sheds.
 * A second, instantaneous signal bounds the turns of the event loop (OVERLOAD_MAX_QUEUE_MS): how
 * long the loop has been busy in its current turn, without getting back to its timers. A request
 * sits in the socket until the loop reads it, and under a queue the loop reads many requests per
 * turn, each handled before the next is read; so past the limit in a turn, the requests still to
 * be read in it are shed at once (503, before the routes' hooks), which keeps a turn, and so the
 * wait of what arrives during it, near the limit. The first request read in a turn is never shed:
 * one long pause (a GC, the host descheduling the process) followed by a lone request is no
 * queue. What it cannot see: requests that waited in the socket through a long turn and are read
 * first in the next one. A mean over the last interval (under-pressure's) rises only after a queue
 * has formed; this signal acts within the turn that forms it.
 *
 * On by default only in production (NODE_ENV=production): a development machine or a test run is
 * often starved of CPU by other work, which is not this process's overload.
 */
export interface OverloadLimits {
  /** OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: shed while the event loop lags more than this (ms); 0 = never. */
  readonly maxEventLoopDelayMs: number
  /** OVERLOAD_MAX_HEAP_MB: shed while the V8 heap in use exceeds this (MiB); 0 = never. Default: 90% of the heap limit. */
  readonly maxHeapUsedMb: number
  /** OVERLOAD_MAX_QUEUE_MS: shed the requests read after this many ms of one busy turn of the event loop (never its first); 0 = never. */
  readonly maxQueueMs: number
  /** OVERLOAD_RETRY_AFTER: the `Retry-After` of a shed request (seconds). */
  readonly retryAfter: number
}

/** How often the event-loop delay and the heap are sampled. */
export const OVERLOAD_SAMPLE_INTERVAL_MS = 100
/** Samples in a row over a limit before shedding starts (it stops at the first sample under). */
export const SUSTAINED_SAMPLES = 2

/** 90% of the V8 heap limit (node --max-old-space-size), in MiB: past it, garbage collection would take over anyway. */
export function defaultMaxHeapMb(): number {
  return Math.floor((getHeapStatistics().heap_size_limit * 0.9) / 2 ** 20)
}

/** The production defaults; elsewhere both limits default to 0 (off). */
export const DEFAULT_OVERLOAD_LIMITS: OverloadLimits = Object.freeze({ maxEventLoopDelayMs: 100, maxHeapUsedMb: defaultMaxHeapMb(), maxQueueMs: 250, retryAfter: 1 })
export const NO_OVERLOAD_LIMITS: OverloadLimits = Object.freeze({ maxEventLoopDelayMs: 0, maxHeapUsedMb: 0, maxQueueMs: 0, retryAfter: 1 })

/** Reads OVERLOAD_MAX_EVENT_LOOP_DELAY_MS, OVERLOAD_MAX_HEAP_MB, OVERLOAD_MAX_QUEUE_MS and OVERLOAD_RETRY_AFTER, remembering problems; the defaults are on only in production. */
export function readOverloadLimits(r: EnvReader, production: boolean): OverloadLimits {
  const d = production ? DEFAULT_OVERLOAD_LIMITS : NO_OVERLOAD_LIMITS
  return Object.freeze({
    maxEventLoopDelayMs: r.int('OVERLOAD_MAX_EVENT_LOOP_DELAY_MS', d.maxEventLoopDelayMs, { min: 0, max: 60_000 }),
    maxHeapUsedMb: r.int('OVERLOAD_MAX_HEAP_MB', d.maxHeapUsedMb, { min: 0, max: 1_048_576 }),
    maxQueueMs: r.int('OVERLOAD_MAX_QUEUE_MS', d.maxQueueMs, { min: 0, max: 60_000 }),
    retryAfter: r.int('OVERLOAD_RETRY_AFTER', d.retryAfter, { min: 1, max: 3600 }),
  })
}

/** How often the queue-wait probe's timer is due: the finest queue wait it can tell. */
export const QUEUE_PROBE_TICK_MS = 5

/** What the turn's length is read from: how late the event loop is now for a timer it was due to run. */
export interface QueueWaitProbe {
  /** Milliseconds the loop is late for its timers now (0 when on time): how long its current turn has been busy. */
  lateMs(): number
  /** Changes each time the timer runs: requests read under the same value were read in the same turn. */
  turn(): number
  stop(): void
}

/**
 * A timer due every `tickMs` (unref'd, so it never keeps a process alive) whose lateness, read
 * when a request is, is how long the loop has been busy without reaching its timers. Synchronous
 * work delays it exactly: no timer runs while JavaScript does. (It wakes an idle process every
 * `tickMs`: a few microseconds of CPU each time.)
 */
export function eventLoopQueueProbe(tickMs = QUEUE_PROBE_TICK_MS, now: () => number = () => performance.now()): QueueWaitProbe {
  let due = now() + tickMs
  let turn = 0
  const timer = setInterval(() => {
    due = now() + tickMs
    turn++
  }, tickMs)
  timer.unref()
  return {
    lateMs: () => Math.max(0, now() - due),
    turn: () => turn,
    stop: () => clearInterval(timer),
  }
}

export interface OverloadOptions {
  /** Absent: off. */
  limits?: OverloadLimits | undefined
  /** Where `gatehouse_overload_shed_total{reason}` is registered (reason: `eventLoopDelay`, `heapUsedBytes`, `queueWait`). */
  registry?: Registry
  /** The queue-wait reading (tests give their own); default: eventLoopQueueProbe(). */
  queueProbe?: QueueWaitProbe
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `exempt`: never shed (health, readiness, metrics). */
    overload?: 'exempt'
  }
}

/**
 * The answer to a shed request, serialized once: both services' error body (RFC 6749 §5.2 JSON,
 * `temporarily_unavailable`). A shed request must cost far less than a served one, or refusing
 * cannot keep up with three times what serving could: so it is answered here, without an Error
 * (no stack trace to capture), without the error handler (no error line in the log; the auth
 * service's handler would also count it as a store failure), with a body that is never serialized
 * again. The request's own completion line and the metric still say it happened.
 */
const SHED_BODY = JSON.stringify(new TemporarilyUnavailable('the server is overloaded; retry later').toJSON())

/**
 * Registers the shedding for the whole app (register it before the routes). A shed request is
 * answered at once: 503, `Retry-After`, `Cache-Control: no-store` and SHED_BODY.
 */
export const overloadShedding = fp(
  async (app: FastifyInstance, options: OverloadOptions) => {
    const limits = options.limits ?? NO_OVERLOAD_LIMITS
    if (limits.maxEventLoopDelayMs === 0 && limits.maxHeapUsedMb === 0 && limits.maxQueueMs === 0) return
    const shed = new Counter({ name: 'gatehouse_overload_shed_total', help: 'Requests answered 503 at once because the process was overloaded, by what tripped', labelNames: ['reason'], registers: options.registry ? [options.registry] : [] })
    const retryAfter = String(limits.retryAfter)
    const refuse = (reply: FastifyReply, reason: string): string => {
      shed.inc({ reason })
      void reply.code(503).header('retry-after', retryAfter).header('cache-control', 'no-store').type('application/json; charset=utf-8')
      return SHED_BODY
    }
    if (limits.maxQueueMs > 0) {
      const probe = options.queueProbe ?? eventLoopQueueProbe()
      app.addHook('onClose', async () => probe.stop())
      let turn = -1
      let readInTurn = 0
      // Before the routes' hooks (the plugin is registered before the routes): a shed request costs no token check, no work.
      app.addHook('onRequest', (request, reply, done) => {
        if (probe.turn() !== turn) {
          turn = probe.turn()
          readInTurn = 0
        }
        readInTurn++
        // Answering in an onRequest hook: send, and do not call done().
        if (readInTurn > 1 && probe.lateMs() > limits.maxQueueMs && request.routeOptions.config?.overload !== 'exempt') void reply.send(refuse(reply, 'queueWait'))
        else done()
      })
    }
    if (limits.maxEventLoopDelayMs === 0 && limits.maxHeapUsedMb === 0) return
    await app.register(underPressure, {
      maxEventLoopDelay: limits.maxEventLoopDelayMs,
      maxHeapUsedBytes: limits.maxHeapUsedMb * 2 ** 20,
      sampleInterval: OVERLOAD_SAMPLE_INTERVAL_MS,
      // Synchronous: a value it returns is sent at once, undefined lets the request through
      // (under-pressure's handlePressure; its type says void, its code sends what is returned).
      pressureHandler: ((request: FastifyRequest, reply: FastifyReply, type: string) => {
        if (request.routeOptions.config?.overload === 'exempt' || streak < SUSTAINED_SAMPLES) return undefined
        return refuse(reply, type)
      }) as unknown as UnderPressureOptions['pressureHandler'],
    })
    // Counts the samples in a row that found a limit exceeded (under-pressure samples on the same period).
    let streak = 0
    const timer = setInterval(() => {
      streak = app.isUnderPressure() ? streak + 1 : 0
    }, OVERLOAD_SAMPLE_INTERVAL_MS)
    timer.unref()
    app.addHook('onClose', async () => clearInterval(timer))
  },
  { name: 'gatehouse-overload', fastify: '5.x' },
)
