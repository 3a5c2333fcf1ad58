import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import formbody from '@fastify/formbody'
import { RequestLogController, httpMetrics, httpServerOptions, overloadShedding, loggerOptions, stdoutDestination } from '@gatehouse/service-kit'
import type { DestinationStream } from 'pino'
import type { AssertionVerifier } from './directory/client-auth.js'
import type { AuthDeps } from './runtime/deps.js'
import { installErrorHandler } from './http/error-handler.js'
import { discoveryRoutes, type MetadataExtension } from './routes/discovery.js'
import { healthRoutes, type HealthState } from './routes/health.js'
import { jwksRoute } from './routes/jwks.js'
import { tokenRoute } from './routes/token.js'
import { parRoute } from './routes/par.js'
import { createAssertionVerifier } from './directory/assertion.js'
import { oidcRoutes } from './routes/oidc.js'
import { deviceAuthorizationRoute } from './routes/device-authorization.js'
import { assetRoutes } from './routes/assets.js'

export interface BuildOptions {
  /** Where log lines go (tests capture them); default stdout. `false` silences. */
  logStream?: DestinationStream | false
  /** Shared with server.ts so readiness turns false first on shutdown. */
  health?: HealthState
  verifyAssertion?: AssertionVerifier
  metadata?: readonly MetadataExtension[]
  /** Largest accepted request body, bytes. */
  bodyLimit?: number
}

/** Builds the auth service from its dependencies; never listens, never reads process.env. */
export async function buildApp(deps: AuthDeps, options: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = options.logStream === false ? false : { ...loggerOptions(deps.config.logLevel), stream: options.logStream ?? stdoutDestination() }
  const app = Fastify({
    logger,
    logController: new RequestLogController(),
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID()
    },
    // request.ip (rate limits, audit logs) comes from X-Forwarded-For only behind a configured proxy (TRUST_PROXY).
    trustProxy: deps.config.trustProxy,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Request, header and keep-alive timeouts (HTTP_*): a slow client cannot hold a connection.
    ...httpServerOptions(deps.config.http),
  })
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id)
    done()
  })
  const health = options.health ?? { accepting: true }
  installErrorHandler(app, () => deps.metrics.storeErrors.inc())
  // Request durations by route and status on the service's registry; /metrics is in routes/health.ts.
  await app.register(httpMetrics, { registry: deps.metrics.registry, defaultMetrics: false, path: false })
  // Past saturation, 503 + Retry-After at once rather than an ever longer queue (OVERLOAD_*); never /healthz, /readyz, /metrics.
  await app.register(overloadShedding, { limits: deps.config.overload, registry: deps.metrics.registry })
  await app.register(formbody, { bodyLimit: options.bodyLimit ?? 64 * 1024 })
  await app.register(healthRoutes, { deps, state: health })
  await app.register(discoveryRoutes, { deps, extensions: options.metadata ?? [] })
  await app.register(jwksRoute, { deps })
  // The scripts of the pages with a passkey ceremony (read once, here).
  await app.register(assetRoutes)
  // private_key_jwt (RFC 7523) at /token, /revoke and /introspect: the clients' configured keys, jti replay store.
  const verifyAssertion = options.verifyAssertion ?? createAssertionVerifier({ issuer: deps.config.issuer, replay: deps.assertionReplay, clock: deps.clock })
  await app.register(tokenRoute, { deps, verifyAssertion })
  await app.register(parRoute, { deps, verifyAssertion })
  await app.register(oidcRoutes, { deps, verifyAssertion })
  await app.register(deviceAuthorizationRoute, { deps, verifyAssertion })
  return app
}
