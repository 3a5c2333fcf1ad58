import { startTracing } from '@gatehouse/service-kit/tracing'

/**
 * Entry point (`node dist/server.js`): tracing first, then the service. When the environment asks
 * for traces (OTEL_EXPORTER_OTLP_ENDPOINT and friends, docs/operations.md "Tracing"), the
 * OpenTelemetry SDK starts here, before start.js and with it fastify, ioredis, pg and the rest
 * are imported, so that the instrumentations patch them on import; start.js is therefore imported
 * dynamically, after. When it does not, nothing of the SDK is loaded.
 */
try {
  await startTracing('gatehouse-auth')
} catch (err) {
  process.stderr.write(`gatehouse auth: tracing failed to start: ${(err as Error).message}\n`)
  process.exit(1)
}
await import('./start.js')
