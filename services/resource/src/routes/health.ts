import type { Verifier } from '@gatehouse/verifier'
import type { FastifyInstance } from 'fastify'

export interface HealthState {
  /** Set false when shutdown begins, so load balancers stop sending traffic first. */
  accepting: boolean
}

/** `/healthz` (alive) and `/readyz` (keys loaded, not shutting down). They need no token. */
export async function healthRoutes(app: FastifyInstance, { verifier, state }: { verifier: Verifier; state: HealthState }): Promise<void> {
  app.get('/healthz', { config: { overload: 'exempt' } }, async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }))
  app.get('/readyz', { config: { overload: 'exempt' } }, async (_request, reply) => {
    const checks = {
      keys: verifier.isReady() ? 'ok' : 'missing',
      shutdown: state.accepting ? 'ok' : 'draining',
      // Reported, not required: without the feed revocations are caught up on reconnect (DESIGN §6).
      revocations: verifier.revocationFeedStatus(),
    }
    const ready = checks.keys === 'ok' && checks.shutdown === 'ok'
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'unavailable', checks })
  })
}
