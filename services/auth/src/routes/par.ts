import type { FastifyInstance } from 'fastify'
import { InvalidDpopProof, OAuthError } from '@gatehouse/service-kit'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { authenticatedRawForm } from '../http/caller.js'
import { PAR_BODY, formBody } from '../http/schemas.js'
import { pushAuthorizationRequest } from '../par/pushed-request.js'
import { claimProof, offerNonce, readProof } from '../dpop/proofs.js'

export interface ParRouteOptions {
  deps: AuthDeps
  verifyAssertion?: AssertionVerifier
}

/**
 * POST /par, the pushed authorization request endpoint (RFC 9126 §2): the client authenticates as
 * at /token, the request is validated as /authorize would, and the answer is 201 with the
 * request_uri and its lifetime (§2.2); errors are RFC 6749 §5.2 JSON (§2.3). A DPoP proof sent
 * with the push binds the code to its key (RFC 9449 §10.1): it becomes the request's `dpop_jkt`,
 * and a `dpop_jkt` of another key is refused. The proof is checked before client authentication
 * and claimed once the client is known, as at /token.
 */
export async function parRoute(app: FastifyInstance, { deps, verifyAssertion }: ParRouteOptions): Promise<void> {
  app.post('/par', { schema: { body: formBody(PAR_BODY) } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    offerNonce(request, reply, deps)
    const proof = readProof(request, deps, '/par')
    const { body, client } = await authenticatedRawForm(request, deps, verifyAssertion)
    let pushed = body
    if (proof !== null) {
      if (body.dpop_jkt !== undefined && body.dpop_jkt !== proof.jkt) {
        throw new InvalidDpopProof('dpop_jkt does not match the key of the DPoP proof', { detail: 'par dpop_jkt mismatch' })
      }
      await claimProof(request, deps, proof, client.client.id)
      pushed = { ...body, dpop_jkt: proof.jkt }
    }
    const { requestUri, expiresIn } = await pushAuthorizationRequest(pushed, client.client, deps)
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
