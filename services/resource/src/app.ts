import { randomUUID } from 'node:crypto'
import { Registry, RequestLogController, httpMetrics, httpServerOptions, overloadShedding, loggerOptions, stdoutDestination } from '@gatehouse/service-kit'
import { Verifier, gatehouseAuth, type Clock, type FetchLike, type GatehouseAuthOptions } from '@gatehouse/verifier'
import Fastify, { type FastifyInstance } from 'fastify'
import type { ResourceConfig } from './config.js'
import { DocumentStore } from './document-store.js'
import { installErrorHandler } from './error-handler.js'
import { adminRoutes } from './routes/admin.js'
import { documentRoutes } from './routes/documents.js'
import { healthRoutes, type HealthState } from './routes/health.js'
import { internalRoutes } from './routes/internal.js'
import { meRoutes } from './routes/me.js'
import { reportsRoutes } from './routes/reports.js'
import { createTokenClient, type TokenClient } from '@gatehouse/token-client'

export interface ResourceDeps {
  /** A verifier built elsewhere (tests, benchmarks); by default one is built from the config and closed with the app. */
  verifier?: Verifier
  /** For the verifier the app builds: how to reach the issuer, and what time it is. */
  fetch?: FetchLike
  clock?: Clock
  /** Where /metrics reads from (default: a registry of this app's own). */
  registry?: Registry
  documents?: DocumentStore
  /** Shared with server.ts so readiness turns false first on shutdown. */
  health?: HealthState
  /** With REPORTS_URL: the token client that exchanges users' tokens (default: one built from the config). */
  tokens?: TokenClient
  /** Where log lines go (tests capture them); default stdout. `false` silences. */
  logStream?: { write(line: string): void } | false
}

const REQUEST_ID = /^[\w.:-]{1,128}$/

/** Builds the resource service (DESIGN §4); never listens, never reads process.env. */
export function buildApp(config: ResourceConfig, deps: ResourceDeps = {}): FastifyInstance {
  const logger = deps.logStream === false ? false : { ...loggerOptions(config.logLevel), stream: deps.logStream ?? stdoutDestination() }
  const app = Fastify({
    logger,
    logController: new RequestLogController(),
    bodyLimit: 16 * 1024,
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Request, header and keep-alive timeouts (HTTP_*): a slow client cannot hold a connection.
    ...httpServerOptions(config.http),
    // A body is what the schema says it is: no coercion, no silently dropped properties.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  })
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id)
    done()
  })
  installErrorHandler(app)
  // A JSON API: any other body type is 415, not a string for the schema to trip over.
  app.removeContentTypeParser('text/plain')

  const registry = deps.registry ?? new Registry()
  const store = deps.documents ?? new DocumentStore()
  const health = deps.health ?? { accepting: true }
  const auth: GatehouseAuthOptions =
    deps.verifier !== undefined
      ? { verifier: deps.verifier }
      : {
          issuer: config.issuer,
          audience: config.audience,
          jwksUri: config.jwksUri,
          clockTolerance: config.clockTolerance,
          redis: config.redisUrl,
          // DPoP (RFC 9449): replay is remembered per replica, in memory (docs/design.md).
          dpop: { publicUrl: config.publicUrl, nonceSecret: config.dpopNonceSecret },
          registry,
          fetch: deps.fetch,
          clock: deps.clock,
        }

  // Order matters: the verifier's onRoute hook must see every route registered after it.
  void app.register(httpMetrics, { registry })
  // Past saturation, 503 + Retry-After at once rather than an ever longer queue (OVERLOAD_*); never /healthz, /readyz, /metrics.
  void app.register(overloadShedding, { limits: config.overload, registry })
  void app.register(gatehouseAuth, auth)
  void app.register(async (scope) => {
    await scope.register(healthRoutes, { verifier: scope.verifier, state: health })
    await scope.register(meRoutes)
    await scope.register(documentRoutes, { store })
    await scope.register(adminRoutes, { prefix: '/admin', store })
    await scope.register(internalRoutes, { prefix: '/internal', store })
    const reports = config.reports
    if (reports !== undefined) {
      const tokens =
        deps.tokens ??
        createTokenClient({ issuer: config.issuer, clientId: reports.clientId, credentials: { type: 'client_secret_basic', secret: reports.clientSecret } })
      await scope.register(reportsRoutes, { reports, tokens, realm: config.audience })
    }
  })
  return app
}
