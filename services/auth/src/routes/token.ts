import type { FastifyInstance } from 'fastify'
import { SpanStatusCode, trace } from '@opentelemetry/api'
import { OAuthError, UnauthorizedClient, UnsupportedGrantType } from '@gatehouse/service-kit'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { GrantType } from '../directory/config-file.js'
import type { AuthDeps } from '../runtime/deps.js'
import { GRANTS } from '../grants/index.js'
import { authenticatedForm } from '../http/caller.js'
import { required } from '../http/form.js'
import { TOKEN_BODY, formBody } from '../http/schemas.js'
import { offerNonce, readProof, tokenRequestProof } from '../dpop/proofs.js'

/** The auth service's tracer (@opentelemetry/api: the no-op one unless tracing is on, docs/operations.md). */
const tracer = trace.getTracer('gatehouse-auth')

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
  app.post('/token', { schema: { body: formBody(TOKEN_BODY) } }, async (request, reply) =>
    // One `gatehouse.grant` span per request (`gatehouse.grant <grant_type>` once the grant type
    // is known to be ours): grant type, client id, outcome; never a secret, code or token.
    await tracer.startActiveSpan('gatehouse.grant', async (span) => {
      try {
        reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
        offerNonce(request, reply, deps)
        const proof = readProof(request, deps, '/token')
        const { params, resources, client } = await authenticatedForm(request, deps, verifyAssertion)
        span.setAttribute('oauth.client_id', client.client.id)
        const grantType = required(params, 'grant_type')
        const handler = Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType as GrantType] : undefined
        if (!handler) throw new UnsupportedGrantType(`grant_type ${JSON.stringify(grantType.slice(0, 64))} is not supported`)
        span.updateName(`gatehouse.grant ${grantType}`)
        span.setAttribute('oauth.grant_type', grantType)
        if (!client.client.grantTypes.has(grantType as GrantType)) throw new UnauthorizedClient(`the client may not use the ${grantType} grant`)
        const dpop = await tokenRequestProof(request, deps, client.client, proof)
        const answer = await handler({ request, params, resources, client, deps, ...(dpop === undefined ? {} : { dpop }) })
        span.setAttribute('gatehouse.outcome', 'issued')
        return answer
      } catch (err) {
        // An OAuth error answer is the grant refusing, not the service failing: its code is the outcome.
        const code = err instanceof OAuthError ? err.code : 'server_error'
        span.setAttribute('gatehouse.outcome', code)
        if (!(err instanceof OAuthError)) span.setStatus({ code: SpanStatusCode.ERROR, message: code })
        throw err
      } finally {
        span.end()
      }
    }),
  )
}
