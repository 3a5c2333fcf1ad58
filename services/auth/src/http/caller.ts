import type { FastifyRequest } from 'fastify'
import { InvalidRequest } from '@gatehouse/service-kit'
import { authenticateClient, type AssertionVerifier, type AuthenticatedClient } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { listParam, singleParams, type Params } from './form.js'
import { audit } from '../audit/trail.js'

/** The parameters a client authenticates with in a form body (RFC 6749 §2.3.1, RFC 7523 §2.2). */
export const CLIENT_AUTH_PARAMS: readonly string[] = ['client_id', 'client_secret', 'client_assertion_type', 'client_assertion']

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
  requireForm(request)
  const params = singleParams(request.body, 'request', ['resource'])
  const resources = listParam(request.body, 'resource')
  return { params, resources, client: await authenticate(request, params, deps, verifyAssertion) }
}

/**
 * The opening of /par (RFC 9126 §2.1): the body as it came (an authorization request may repeat a
 * parameter, RFC 8707 `resource`), the client authenticated as at /token from its authentication
 * parameters alone, which must not repeat.
 */
export async function authenticatedRawForm(
  request: FastifyRequest,
  deps: AuthDeps,
  verifyAssertion: AssertionVerifier | undefined,
): Promise<{ body: Readonly<Record<string, unknown>>; client: AuthenticatedClient }> {
  requireForm(request)
  const body = typeof request.body === 'object' && request.body !== null ? (request.body as Record<string, unknown>) : {}
  const auth = singleParams(Object.fromEntries(CLIENT_AUTH_PARAMS.filter((k) => Object.hasOwn(body, k)).map((k) => [k, body[k]])))
  return { body, client: await authenticate(request, auth, deps, verifyAssertion) }
}

function requireForm(request: FastifyRequest): void {
  if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new InvalidRequest('the request must be application/x-www-form-urlencoded')
  }
}

async function authenticate(request: FastifyRequest, params: Params, deps: AuthDeps, verifyAssertion: AssertionVerifier | undefined): Promise<AuthenticatedClient> {
  return await authenticateClient(request, params, {
    clients: deps.clients,
    verifyAssertion,
    onFailure: (clientId, reason) => {
      deps.metrics.clientAuthFailures.inc()
      audit(request.log, deps.audit, { event: 'client.auth_failed', client_id: clientId, reason, ip: request.ip }, 'client authentication failed')
    },
  })
}
