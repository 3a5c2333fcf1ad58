import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export { Registry } from 'prom-client'

export interface HttpMetricsOptions {
  /** Where every metric of the service lives; `/metrics` serves it. */
  registry: Registry
  /** Node.js process metrics (default true). */
  defaultMetrics?: boolean
  /** The scrape route (default `/metrics`); `false` for none. */
  path?: string | false
}

declare module 'fastify' {
  interface FastifyInstance {
    readonly metricsRegistry: Registry
  }
}

/**
 * Prometheus for a fastify service: `http_request_duration_seconds` by
 * method, route pattern (never the raw URL, so cardinality stays bounded)
 * and status, plus the scrape route.
 */
async function httpMetricsPlugin(app: FastifyInstance, options: HttpMetricsOptions): Promise<void> {
  const { registry } = options
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })
  app.decorate('metricsRegistry', registry)
  app.addHook('onResponse', (request, reply, done) => {
    duration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }, reply.elapsedTime / 1000)
    done()
  })
  const path = options.path ?? '/metrics'
  if (path !== false) {
    app.get(path, { config: { overload: 'exempt' } }, async (_request, reply) => {
      void reply.header('content-type', registry.contentType).header('cache-control', 'no-store')
      return await registry.metrics()
    })
  }
}

export const httpMetrics = fp(httpMetricsPlugin, { fastify: '5.x', name: '@gatehouse/service-kit/http-metrics' })
