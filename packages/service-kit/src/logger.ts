import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { isSpanContextValid, trace } from '@opentelemetry/api'
import pino, { type DestinationStream, type LoggerOptions } from 'pino'
import { tracingStarted } from './tracing.js'

/**
 * The one redaction list (STYLE: Logs): every secret-bearing field that can reach a log line,
 * wherever it appears. Headers never do: the `req` and `res` serializers below write none (and
 * fastify logs requests and replies through them). Fields named like a secret are censored by one
 * pass over a line's keys (`redactSecrets`, pino's `formatters.log`), at the top of the line and one
 * level down (a handler logging `{ body }` or `{ headers }`), copying only a line that holds one.
 * (pino's path redaction with `*.name` wildcards did the same at three times the cost of a line.)
 */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([
  'password',
  'client_secret',
  'clientSecret',
  'access_token',
  'refresh_token',
  'id_token',
  // RFC 8693 §2.1: the tokens of a token exchange.
  'subject_token',
  'actor_token',
  'token',
  'code_verifier',
  // RFC 8628: the polling device's secret, and the code a user types (what a guesser wants).
  'device_code',
  'user_code',
  'client_assertion',
  'assertion',
  'cookie',
  'secret',
  'authorization',
  // A DPoP proof (RFC 9449): single-use where it is checked, but replayable elsewhere within its life.
  'dpop',
])

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

/**
 * Query parameters whose values never reach a log line. fastify logs every request's URL, and a
 * client may put a token in the query even where it is not accepted (RFC 6750 §2.3 is not
 * offered), or legitimately send one (`id_token_hint` at /logout); `login_hint` is personal data.
 * A pushed request's `request_uri` (RFC 9126) and a device's `user_code` (RFC 8628
 * `verification_uri_complete`) stand in for a pending authorization until they are used.
 */
export const REDACT_QUERY_PARAMS: ReadonlySet<string> = new Set([
  'access_token',
  'refresh_token',
  'id_token',
  'id_token_hint',
  'token',
  'code',
  'code_verifier',
  'client_secret',
  'client_assertion',
  'assertion',
  'password',
  'login_hint',
  'logout_hint',
  'request_uri',
  'user_code',
  'device_code',
])

/** The URL with the values of secret query parameters replaced (names and the rest kept for debugging). */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      const rawName = eq < 0 ? pair : pair.slice(0, eq)
      let name = rawName
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '))
      } catch {
        // A malformed escape: judge the raw name.
      }
      return eq >= 0 && REDACT_QUERY_PARAMS.has(name.toLowerCase()) ? `${rawName}=[redacted]` : pair
    })
    .join('&')
  return `${url.slice(0, q)}?${query}`
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

/** pino options both services use: JSON, redacted, with the serializers fastify expects, and the active trace's ids (`traceFields`) when tracing runs. */
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
