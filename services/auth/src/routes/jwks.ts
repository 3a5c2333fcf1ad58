import type { FastifyInstance } from 'fastify'
import type { AuthDeps } from '../deps.js'

/** How long verifiers may cache the key set; a key is published longer than this before it signs (DESIGN §7). */
export const JWKS_MAX_AGE = 300

export async function jwksRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  app.get('/jwks.json', async (request, reply) => {
    const snap = deps.keys.current()
    reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE}`).header('etag', snap.etag).header('content-type', 'application/jwk-set+json')
    const inm = request.headers['if-none-match']
    if (inm !== undefined && inm.split(',').some((t) => t.trim() === snap.etag)) return reply.code(304).send()
    return reply.send(snap.jwksBody)
  })
}
