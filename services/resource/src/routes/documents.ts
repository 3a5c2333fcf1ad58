import type { FastifyInstance } from 'fastify'
import type { DocumentStore } from '../document-store.js'

const documentSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    title: { type: 'string' },
    body: { type: 'string' },
    owner: { type: 'string' },
    created_at: { type: 'string' },
  },
} as const

/** Room for a 200-character title and a 10,000-character body even when every character is escaped. */
const BODY_LIMIT = 128 * 1024

/** `GET /documents` (scope documents:read), `POST /documents` (scope documents:write). */
export async function documentRoutes(app: FastifyInstance, { store }: { store: DocumentStore }): Promise<void> {
  app.get(
    '/documents',
    {
      config: { auth: { scopes: ['documents:read'] } },
      schema: { response: { 200: { type: 'object', properties: { documents: { type: 'array', items: documentSchema } } } } },
    },
    async () => ({ documents: store.list() }),
  )

  app.post<{ Body: { title: string; body?: string } }>(
    '/documents',
    {
      config: { auth: { scopes: ['documents:write'] } },
      bodyLimit: BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          required: ['title'],
          additionalProperties: false,
          properties: {
            title: { type: 'string', minLength: 1, maxLength: 200 },
            body: { type: 'string', maxLength: 10_000 },
          },
        },
        response: { 201: documentSchema },
      },
    },
    async (request, reply) => {
      const doc = store.add(request.body.title, request.body.body ?? '', request.auth.subject)
      request.log.info({ event: 'document.created', id: doc.id, sub: request.auth.subject }, 'document created')
      return reply.code(201).send(doc)
    },
  )
}
