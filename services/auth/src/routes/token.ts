import type { FastifyInstance } from 'fastify'
import { UnauthorizedClient, UnsupportedGrantType } from '@gatehouse/service-kit'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { GrantType } from '../directory/config-file.js'
import type { AuthDeps } from '../runtime/deps.js'
import { GRANTS } from '../grants/index.js'
import { authenticatedForm } from '../http/caller.js'
import { required } from '../http/form.js'
import { TOKEN_BODY, formBody } from '../http/schemas.js'
import { offerNonce, readProof, tokenRequestProof } from '../dpop/proofs.js'

export interface TokenRouteOptions {
  deps: AuthDeps
  verifyAssertion?: AssertionVerifier
}

/**
 * POST /token (RFC 6749 §3.2): an ordered list of small checks ending in the
 * handler for the grant type. A DPoP proof (RFC 9449 §5) is checked first, before client
 * authentication spends an assertion; it is claimed (single use) once the request is otherwise
 * acceptable, before the grant spends a code or a refresh token.
 */
export async function tokenRoute(app: FastifyInstance, { deps, verifyAssertion }: TokenRouteOptions): Promise<void> {
  app.post('/token', { schema: { body: formBody(TOKEN_BODY) } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    offerNonce(request, reply, deps)
    const proof = readProof(request, deps, '/token')
    const { params, resources, client } = await authenticatedForm(request, deps, verifyAssertion)
    const grantType = required(params, 'grant_type')
    const handler = Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType as GrantType] : undefined
    if (!handler) throw new UnsupportedGrantType(`grant_type ${JSON.stringify(grantType.slice(0, 64))} is not supported`)
    if (!client.client.grantTypes.has(grantType as GrantType)) throw new UnauthorizedClient(`the client may not use the ${grantType} grant`)
    const dpop = await tokenRequestProof(request, deps, client.client, proof)
    return await handler({ request, params, resources, client, deps, ...(dpop === undefined ? {} : { dpop }) })
  })
}
