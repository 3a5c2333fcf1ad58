import type { FastifyRequest } from 'fastify'
import { InvalidRequest } from '@gatehouse/service-kit'
import { authenticateClient, type AssertionVerifier, type AuthenticatedClient } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { listParam, singleParams, type Params } from './form.js'
import { audit } from '../audit/trail.js'

/**
 * The common opening of /token, /revoke and /introspect: a form body with single-valued
 * parameters, then client authentication by any registered method (RFC 7009 §2.1, RFC 7662 §2.1),
 * failures logged as `client.auth_failed`. `resource` may repeat (RFC 8707 §2): its values come
 * apart, so /token can answer a repetition with invalid_target rather than invalid_request.
 */
export async function authenticatedForm(
  request: FastifyRequest,
  deps: AuthDeps,
  verifyAssertion: AssertionVerifier | undefined,
): Promise<{ params: Params; resources: string[]; client: AuthenticatedClient }> {
  if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new InvalidRequest('the request must be application/x-www-form-urlencoded')
  }
  const params = singleParams(request.body, 'request', ['resource'])
  const resources = listParam(request.body, 'resource')
  const client = await authenticateClient(request, params, {
    clients: deps.clients,
    verifyAssertion,
    onFailure: (clientId, reason) => {
      deps.metrics.clientAuthFailures.inc()
      audit(request.log, deps.audit, { event: 'client.auth_failed', client_id: clientId, reason, ip: request.ip }, 'client authentication failed')
    },
  })
  return { params, resources, client }
}
