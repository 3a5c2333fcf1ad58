import type { FastifyInstance } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'

export interface HealthState {
  /** Set false when shutdown begins so load balancers stop sending traffic first. */
  accepting: boolean
}

export async function healthRoutes(app: FastifyInstance, { deps, state }: { deps: AuthDeps; state: HealthState }): Promise<void> {
  app.get('/healthz', { config: { overload: 'exempt' } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { overload: 'exempt' } }, async (request, reply) => {
    const checks: Record<string, string> = {}
    /** 'ok' when `ping` resolves; 'unavailable' (and a warning) when it throws. */
    const probe = async (name: string, ping: () => Promise<void>): Promise<void> => {
      try {
        await ping()
        checks[name] = 'ok'
      } catch (err) {
        checks[name] = 'unavailable'
        request.log.warn({ err: (err as Error).message }, `readiness: ${name} unavailable`)
      }
    }
    checks.keys = deps.keys.current().keys.length > 0 ? 'ok' : 'missing'
    await probe('store', () => deps.ping())
    // Users and clients gone from the store (Redis restarted empty): not ready until seeded again.
    if (deps.directoryReady !== undefined && checks.store === 'ok') {
      checks.directory = await deps.directoryReady().then(
        (present) => (present ? 'ok' : 'missing'),
        () => 'unavailable',
      )
    }
    // PostgreSQL (DATABASE_URL): users and clients not answerable from a cache need it.
    if (deps.pingDatabase !== undefined) await probe('database', deps.pingDatabase)
    checks.shutdown = state.accepting ? 'ok' : 'draining'
    const ready = Object.values(checks).every((v) => v === 'ok')
    return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send({ status: ready ? 'ready' : 'unavailable', checks })
  })
  app.get('/metrics', { config: { overload: 'exempt' } }, async (_request, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType)
    return await deps.metrics.registry.metrics()
  })
}
