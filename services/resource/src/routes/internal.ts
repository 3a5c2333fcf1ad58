import type { FastifyInstance } from 'fastify'
import type { DocumentStore } from '../document-store.js'
import { sendNotFound } from '../error-handler.js'

/**
 * `GET /internal` and everything below it: a service token (client_credentials,
 * no user) with scope internal:read. A user token is refused even with the scope.
 */
export async function internalRoutes(app: FastifyInstance, { store }: { store: DocumentStore }): Promise<void> {
  app.addHook('onRequest', app.requireAuth({ kind: 'service', scopes: ['internal:read'] }))
  app.get('/', async (request) => ({ service: request.auth.clientId, documents: store.size }))
  app.get('/documents', async () => ({ documents: store.list() }))
  app.setNotFoundHandler(sendNotFound)
}
