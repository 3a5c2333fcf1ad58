import type { FastifyInstance } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'

/** Default of JWKS_MAX_AGE: how long verifiers may cache the key set (seconds). */
export const JWKS_MAX_AGE = 300

/**
 * GET /jwks.json (DESIGN §7). `Cache-Control: public, max-age=JWKS_MAX_AGE`
 * bounds how long a verifier may keep an old copy; the key lifecycle publishes
 * a new key for longer than that (plus a reload interval) before any replica
 * signs with it, so a verifier that honours max-age always has the key before
 * it sees a token signed by it. The strong ETag is a digest of the body, the
 * same on every replica holding the same set, so revalidations (RFC 9110
 * §13.1.2 If-None-Match) answer 304 without the body until the set changes.
 */
export async function jwksRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const maxAge = deps.config.jwksMaxAge ?? JWKS_MAX_AGE
  app.get('/jwks.json', async (request, reply) => {
    const snap = deps.keys.current()
    reply.header('cache-control', `public, max-age=${maxAge}`).header('etag', snap.etag).header('content-type', 'application/jwk-set+json')
    const inm = request.headers['if-none-match']
    if (inm !== undefined && inm.split(',').some((t) => t.trim() === snap.etag || t.trim() === '*')) return reply.code(304).send()
    return reply.send(snap.jwksBody)
  })
}
