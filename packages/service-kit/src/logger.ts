import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { isSpanContextValid, trace } from '@opentelemetry/api'
import pino, { type DestinationStream, type LoggerOptions } from 'pino'
import { redactUrl, SECRET_FIELDS } from './secrets.js'
import { tracingStarted } from './tracing.js'

export { SECRET_FIELDS, REDACT_QUERY_PARAMS, redactUrl } from './secrets.js'

/**
 * Names redacted one level down only: at the top of a line `code` is an error code (`{ code:
 * 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }`); inside an object it may be an authorization code.
 */
const NESTED_SECRET_FIELDS: ReadonlySet<string> = new Set(['code'])

const CENSOR = '[redacted]'

function isSecret(name: string, nested: boolean): boolean {
  return SECRET_FIELDS.has(name) || (nested && NESTED_SECRET_FIELDS.has(name))
}

/** `value` with its secret fields censored: itself when it holds none, else a copy (same prototype, so an Error stays one). */
function censorFields(value: object, nested: boolean): object {
  let copy: Record<string, unknown> | undefined
  for (const key of Object.keys(value)) {
    if (!isSecret(key, nested)) continue
    copy ??= Object.create(Object.getPrototypeOf(value) as object | null, Object.getOwnPropertyDescriptors(value)) as Record<string, unknown>
    Object.defineProperty(copy, key, { value: CENSOR, enumerable: true, writable: true, configurable: true })
  }
  return copy ?? value
}

/**
 * A log line's fields with every secret field censored, at the top and one level down (the reach
 * pino's `*.name` paths had). Never changes the caller's objects.
 */
export function redactSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out = censorFields(fields, false) as Record<string, unknown>
  for (const key of Object.keys(out)) {
    const value = out[key]
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue
    const censored = censorFields(value, true)
    if (censored === value) continue
    if (out === fields) out = { ...fields }
    out[key] = censored
  }
  return out
}

interface ReplyLike {
  statusCode?: number
}

interface RequestLike {
  method?: string
  url?: string
  host?: string
  ip?: string
  socket?: { remotePort?: number }
}

let stdout: DestinationStream | undefined

/**
 * Where the services' log lines go: standard output, written synchronously, one destination per
 * process. pino's default for stdout writes asynchronously through libuv's thread pool and buffers
 * without bound when the reader falls behind (a log shipper starved of CPU): measured, the
 * resource service grew by 330 MB in five minutes that way, and each batch's hand-off to the pool
 * and back cost a token request about 7 % of its time on one core. Written in place, a line costs
 * one write(2), and a stalled reader slows the service down instead of filling its memory.
 */
export function stdoutDestination(): DestinationStream {
  stdout ??= pino.destination({ dest: 1, sync: true })
  return stdout
}

/**
 * The trace of a log line (issue 19): `trace_id` and `span_id` of the active span, when tracing
 * is on and a span is active, so that a line leads to its trace; nothing otherwise. Only installed
 * (as pino's mixin) when tracing runs: tracing off, log lines cost what they did.
 */
export function traceFields(): Record<string, string> {
  const context = trace.getActiveSpan()?.spanContext()
  // A new object each time: pino merges the line's fields into what the mixin returns.
  if (context === undefined || !isSpanContextValid(context)) return {}
  return { trace_id: context.traceId, span_id: context.spanId }
}

/** pino options both services use: JSON, redacted, with the serializers fastify expects, and the active trace's ids (`traceFields`). */
export function loggerOptions(level: string, extra: Partial<LoggerOptions> = {}): LoggerOptions {
  return {
    level,
    ...(tracingStarted() ? { mixin: traceFields } : {}),
    formatters: { log: redactSecrets },
    serializers: {
      // fastify's own request serializer, with the URL's secrets redacted.
      req: (req: RequestLike) => ({
        method: req.method,
        url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
      // fastify's own reply serializer, for any logger built from these options.
      res: (res: ReplyLike) => ({ statusCode: res.statusCode }),
    },
    ...extra,
  }
}

/**
 * fastify's request lines, one per request: the completion line carries the request (method, URL
 * with its secrets redacted, address), the status and the duration, so "incoming request" is
 * logged at `debug` only. Every line costs the request that writes it (a third of a cached
 * resource request, docs/performance.md), and the arrival line says nothing the completion line
 * does not, except for a request that never completes; `LOG_LEVEL=debug` shows those.
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}
