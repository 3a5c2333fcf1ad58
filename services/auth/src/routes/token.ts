import type { FastifyInstance } from 'fastify'
import { InvalidRequest, UnauthorizedClient, UnsupportedGrantType } from '@gatehouse/service-kit'
import { authenticateClient, type AssertionVerifier } from '../client-auth.js'
import type { GrantType } from '../config-file.js'
import type { AuthDeps } from '../deps.js'
import { GRANTS } from '../grants/index.js'
import { required, singleParams } from '../http/form.js'
import { TOKEN_BODY } from '../http/schemas.js'

export interface TokenRouteOptions {
  deps: AuthDeps
  verifyAssertion?: AssertionVerifier
}

/**
 * POST /token (RFC 6749 §3.2): an ordered list of small checks ending in the
 * handler for the grant type.
 */
export async function tokenRoute(app: FastifyInstance, { deps, verifyAssertion }: TokenRouteOptions): Promise<void> {
  app.post('/token', { schema: { body: TOKEN_BODY } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      throw new InvalidRequest('the token request must be application/x-www-form-urlencoded')
    }
    const params = singleParams(request.body)
    const grantType = required(params, 'grant_type')
    const clientAuth: Parameters<typeof authenticateClient>[2] = {
      clients: deps.clients,
      onFailure: (clientId, reason) => {
        deps.metrics.clientAuthFailures.inc()
        request.log.info({ event: 'client.auth_failed', client_id: clientId, reason, ip: request.ip }, 'client authentication failed')
      },
    }
    if (verifyAssertion) clientAuth.verifyAssertion = verifyAssertion
    const client = await authenticateClient(request, params, clientAuth)
    const handler = Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType as GrantType] : undefined
    if (!handler) throw new UnsupportedGrantType(`grant_type ${JSON.stringify(grantType.slice(0, 64))} is not supported`)
    if (!client.client.grantTypes.has(grantType as GrantType)) throw new UnauthorizedClient(`the client may not use the ${grantType} grant`)
    return await handler({ request, params, client, deps })
  })
}
