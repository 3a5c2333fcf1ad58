import type { Attributes, AttributeValue, Context } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base'

/**
 * OpenTelemetry tracing for both services (issue 19), off unless configured. This module is the
 * services' tracing entry (`@gatehouse/service-kit/tracing`, loaded by each service's
 * `dist/server.js` before anything else): it imports no SDK module itself, only decides from the
 * environment whether tracing is on and, when it is, loads the SDK and the instrumentations with
 * dynamic imports, before the service's own modules (fastify, ioredis, pg) are imported, so that
 * the instrumentations can patch them. When tracing is off nothing is loaded or patched, and the
 * `@opentelemetry/api` calls of the libraries (@gatehouse/verifier, @gatehouse/token-client, the
 * auth service's grant spans) go to the API's no-op tracer.
 */

/** The environment variables tracing reads (the standard OpenTelemetry ones). */
export type TracingEnv = Readonly<Record<string, string | undefined>>

/**
 * True when the environment asks for traces: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or an exporter named by `OTEL_TRACES_EXPORTER` (`otlp`,
 * `console`). `OTEL_TRACES_EXPORTER=none` and `OTEL_SDK_DISABLED=true` turn it off whatever else is set.
 */
export function tracingEnabled(env: TracingEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase()
  if (exporter === 'none') return false
  if (exporter !== undefined && exporter !== '') return true
  return nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) || nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
}

function nonEmpty(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== ''
}

/**
 * What span attributes are censored with: the log lines' rules (logger.ts `redactUrl` and
 * `SECRET_FIELDS`), passed in because logger.ts imports fastify, which must load after the
 * instrumentations are registered.
 */
export interface AttributeRedaction {
  /** The URL with the values of secret query parameters replaced. */
  redactUrl(url: string): string
  /** Names whose values are secrets. */
  secretFields: ReadonlySet<string>
}

/** Attribute keys whose values are query strings without their `?` (OpenTelemetry's `url.query`). */
const QUERY_KEYS: ReadonlySet<string> = new Set(['url.query'])

/** An attribute value with the secrets of a URL's query censored (as in log lines). */
function redactValue(key: string, value: AttributeValue | undefined, redaction: AttributeRedaction): AttributeValue | undefined {
  if (typeof value !== 'string') return value
  if (QUERY_KEYS.has(key)) return redaction.redactUrl(`?${value}`).slice(1)
  return value.includes('?') ? redaction.redactUrl(value) : value
}

/**
 * A span's attributes as exported: the values of secret query parameters censored wherever a URL
 * or query string appears (`url.full`, `http.target`, `http.url`, `url.query`: the http, undici
 * and fastify instrumentations record them from the request line, and a client may put a code or
 * token in a query), and any attribute named like a secret (matched on the key's last dotted
 * segment, e.g. `http.request.header.authorization`) replaced outright. Changes the object in place.
 */
export function redactAttributes(attributes: Attributes, redaction: AttributeRedaction): void {
  for (const key of Object.keys(attributes)) {
    const last = key.slice(key.lastIndexOf('.') + 1)
    if (redaction.secretFields.has(last)) {
      attributes[key] = '[redacted]'
      continue
    }
    const value = attributes[key]
    const redacted = redactValue(key, value, redaction)
    if (redacted !== value) attributes[key] = redacted
  }
}

/**
 * The span processor in front of the exporting one: censors every ended span's attributes
 * (`redactAttributes`) and its events' attributes before the next processor sees them. A span's
 * attributes are frozen for the instrumentation once it ends; this runs between the end and the
 * export, the one place every instrumentation's attributes pass through.
 */
export class RedactingSpanProcessor implements SpanProcessor {
  constructor(
    private readonly next: SpanProcessor,
    private readonly redaction: AttributeRedaction,
  ) {}

  onStart(span: Span, parentContext: Context): void {
    this.next.onStart(span, parentContext)
  }

  onEnd(span: ReadableSpan): void {
    redactAttributes(span.attributes, this.redaction)
    for (const event of span.events) if (event.attributes) redactAttributes(event.attributes, this.redaction)
    this.next.onEnd(span)
  }

  forceFlush(): Promise<void> {
    return this.next.forceFlush()
  }

  shutdown(): Promise<void> {
    return this.next.shutdown()
  }
}

/** What `startTracing` started: `flush` exports the spans still buffered (bounded by the caller). */
export interface TracingHandle {
  flush(): Promise<void>
  shutdown(): Promise<void>
}

let running: TracingHandle | undefined

/** Paths never traced (probes and scrapes: one span each every few seconds, and no caller's trace). */
const UNTRACED_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics'])

function untraced(url: string | undefined): boolean {
  if (url === undefined) return false
  const q = url.indexOf('?')
  return UNTRACED_PATHS.has(q < 0 ? url : url.slice(0, q))
}

/**
 * Starts the OpenTelemetry SDK when the environment asks for it (`tracingEnabled`), and returns
 * whether it did. Call it before the service's modules are imported (`dist/server.js` does, then
 * imports the service): it registers import-in-the-middle's loader hook, so the ESM imports that
 * follow can be patched, the global tracer provider (W3C trace context and baggage propagation,
 * AsyncLocalStorage context), and the instrumentations: http (incoming requests continue the
 * caller's `traceparent`), undici (node's fetch: JWKS fetches, token requests, back-channel calls,
 * each carrying `traceparent`), ioredis and pg (statements without values: ioredis spans name the
 * command only), and @fastify/otel (route and hook spans, added to every fastify instance on
 * creation). Spans go through `RedactingSpanProcessor` to a batching OTLP/HTTP exporter
 * configured by the standard variables (`OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`), or to the console
 * with `OTEL_TRACES_EXPORTER=console`. `OTEL_SERVICE_NAME` overrides `serviceName`.
 */
export async function startTracing(serviceName: string, env: TracingEnv = process.env): Promise<boolean> {
  if (running !== undefined) return true
  if (!tracingEnabled(env)) return false
  const { register } = await import('node:module')
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
  const [{ NodeTracerProvider }, { BatchSpanProcessor, ConsoleSpanExporter }, { OTLPTraceExporter }, resources, semconv, instrumentation] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
    import('@opentelemetry/instrumentation'),
  ])
  const [{ HttpInstrumentation }, { UndiciInstrumentation }, { IORedisInstrumentation }, { PgInstrumentation }, fastifyOtel] = await Promise.all([
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-undici'),
    import('@opentelemetry/instrumentation-ioredis'),
    import('@opentelemetry/instrumentation-pg'),
    import('@fastify/otel'),
  ])
  // The instrumentations first, on the global tracer provider (the API's proxy, which delegates
  // to the provider once it is registered below), so that what loads from here on is patched.
  const FastifyOtelInstrumentation = fastifyOtel.FastifyOtelInstrumentation
  instrumentation.registerInstrumentations({
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (request) => untraced(request.url) }),
      new UndiciInstrumentation(),
      new IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
      new PgInstrumentation(),
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: (route) => UNTRACED_PATHS.has(route.url) }),
    ],
  })
  // The log lines' redaction rules, for the spans (logger.ts loads fastify: after the above).
  const { redactUrl, SECRET_FIELDS } = await import('./logger.js')
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'console' ? new ConsoleSpanExporter() : new OTLPTraceExporter()
  const name = nonEmpty(env.OTEL_SERVICE_NAME) ? env.OTEL_SERVICE_NAME!.trim() : serviceName
  const resource = resources
    .defaultResource()
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
    .merge(resources.resourceFromAttributes({ [semconv.ATTR_SERVICE_NAME]: name }))
  const redaction: AttributeRedaction = { redactUrl, secretFields: SECRET_FIELDS }
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new RedactingSpanProcessor(new BatchSpanProcessor(exporter), redaction)] })
  provider.register()
  running = { flush: () => provider.forceFlush(), shutdown: () => provider.shutdown() }
  return true
}

/** True once `startTracing` has started the SDK in this process. */
export function tracingStarted(): boolean {
  return running !== undefined
}

/**
 * Exports the spans still buffered, when tracing runs (graceful shutdown calls it before exit);
 * resolves at once when it does not. Never rejects: a collector that is down costs the spans, not
 * the shutdown.
 */
export async function flushTracing(): Promise<void> {
  if (running === undefined) return
  try {
    await running.flush()
  } catch {
    // The collector is unreachable: the spans are lost, the shutdown goes on.
  }
}
