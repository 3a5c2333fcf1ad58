import type { FastifyInstance } from 'fastify'
import type { DocumentStore } from '../document-store.js'
import { sendNotFound } from '../error-handler.js'

/**
 * `GET /admin` and everything below it: role admin. The requirement is a
 * hook on the whole prefix, its 404s included, so an unknown path under
 * /admin reveals nothing to a caller who is not an admin.
 */
export async function adminRoutes(app: FastifyInstance, { store }: { store: DocumentStore }): Promise<void> {
  app.addHook('onRequest', app.requireAuth({ roles: ['admin'] }))
  app.get('/', async (request) => ({ admin: true, sub: request.auth.subject }))
  app.get('/stats', async () => ({ documents: store.size }))
  app.setNotFoundHandler(sendNotFound)
}
