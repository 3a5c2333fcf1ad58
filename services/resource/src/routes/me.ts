import type { FastifyInstance } from 'fastify'

/** `GET /me`: any valid user token (DESIGN §4); a delegated one (token exchange) also shows who acts (`act`, RFC 8693 §4.1). */
export async function meRoutes(app: FastifyInstance): Promise<void> {
  app.get(
    '/me',
    {
      config: { auth: { kind: 'user' } },
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              sub: { type: 'string' },
              roles: { type: 'array', items: { type: 'string' } },
              scope: { type: 'string' },
              client_id: { type: 'string' },
              act: { type: 'object', additionalProperties: true },
            },
          },
        },
      },
    },
    async (request) => {
      const { auth } = request
      return { sub: auth.subject, roles: auth.roles, scope: auth.scopes.join(' '), client_id: auth.clientId, act: auth.claims.act }
    },
  )
}
