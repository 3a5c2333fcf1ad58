import type { FastifyInstance } from 'fastify'
import { OAuthError } from '@gatehouse/service-kit'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { authenticatedRawForm } from '../http/caller.js'
import { PAR_BODY, formBody } from '../http/schemas.js'
import { pushAuthorizationRequest } from '../par/pushed-request.js'

export interface ParRouteOptions {
  deps: AuthDeps
  verifyAssertion?: AssertionVerifier
}

/**
 * POST /par, the pushed authorization request endpoint (RFC 9126 §2): the client authenticates as
 * at /token, the request is validated as /authorize would, and the answer is 201 with the
 * request_uri and its lifetime (§2.2); errors are RFC 6749 §5.2 JSON (§2.3).
 */
export async function parRoute(app: FastifyInstance, { deps, verifyAssertion }: ParRouteOptions): Promise<void> {
  app.post('/par', { schema: { body: formBody(PAR_BODY) } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { body, client } = await authenticatedRawForm(request, deps, verifyAssertion)
    const { requestUri, expiresIn } = await pushAuthorizationRequest(body, client.client, deps)
    request.log.info({ event: 'par.pushed', client_id: client.client.id, auth_method: client.method }, 'authorization request pushed')
    return reply.code(201).send({ request_uri: requestUri, expires_in: expiresIn })
  })
  // §2.3: any other method is 405.
  app.route({
    method: ['GET', 'PUT', 'DELETE', 'PATCH'],
    url: '/par',
    handler: async (_request, reply) => reply.header('allow', 'POST').code(405).header('cache-control', 'no-store').send(new OAuthError('invalid_request', 405, 'use POST').toJSON()),
  })
}
