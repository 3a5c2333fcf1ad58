import type { FastifyInstance } from 'fastify'
import { AccessDenied, InvalidClient } from '@gatehouse/service-kit'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { authenticatedForm } from '../http/caller.js'
import { required } from '../http/form.js'
import { TOKEN_CHECK_BODY, formBody } from '../http/schemas.js'
import { accessTokenChecker } from '../tokens/live-access-token.js'
import { familyDeadline } from '../families/policy.js'
import { allowedResources } from '../tokens/resource-indicators.js'

const INACTIVE = Object.freeze({ active: false })

/**
 * POST /introspect (RFC 7662), for authenticated clients given metadata `"introspection": true`
 * (DESIGN §10.1): a public client cannot prove who it is (401, §2.1), and an authenticated client
 * without the right is refused (403), so no client can learn who holds any token (§4). Access
 * tokens are checked with our own keys and against their family, and are active only to a
 * caller allowed their audience (its `audience` or `resources`) or to the client they were issued to; a
 * refresh token is active only when it is the current one of a live family, and only to its own
 * client. Anything else — expired, revoked, unknown, malformed, another's — is
 * `{"active": false}` and nothing more (§2.2).
 */
export async function introspectRoute(app: FastifyInstance, { deps, verifyAssertion }: { deps: AuthDeps; verifyAssertion?: AssertionVerifier }): Promise<void> {
  const checkAccessToken = accessTokenChecker(deps)
  app.post('/introspect', { schema: { body: formBody(TOKEN_CHECK_BODY) } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { params, client } = await authenticatedForm(request, deps, verifyAssertion)
    if (client.method === 'none') throw new InvalidClient('introspection requires client authentication', { detail: 'public client' })
    const caller = client.client
    if (!caller.introspection) throw new AccessDenied('this client may not introspect tokens', { detail: `client ${caller.id} lacks introspection metadata` })
    const token = required(params, 'token')
    const iss = deps.config.issuer

    const access = await checkAccessToken(token)
    if (access !== null) {
      const audiences = typeof access.aud === 'string' ? [access.aud] : (access.aud ?? [])
      const allowed = allowedResources(caller)
      if (access.client_id !== caller.id && !audiences.some((a) => allowed.includes(a))) {
        request.log.info({ event: 'introspection.refused', client_id: caller.id, jti: access.jti }, 'token of an audience the caller is not allowed')
        return INACTIVE
      }
      const out: Record<string, unknown> = {
        active: true,
        // RFC 9449 §6.2: a DPoP-bound token says so, and names its key.
        token_type: access.cnf === undefined ? 'access_token' : 'DPoP',
        scope: access.scope,
        client_id: access.client_id,
        sub: access.sub,
        exp: access.exp,
        iat: access.iat,
        iss,
        aud: access.aud,
        jti: access.jti,
      }
      if (access.sid !== undefined) out.sid = access.sid
      if (access.cnf !== undefined) out.cnf = { jkt: access.cnf.jkt }
      // RFC 8693 §4.1: who acts for the subject, in an introspection response too.
      if (access.act !== undefined) out.act = access.act
      // RFC 9470 §6.2: how and when the user authenticated, for the resource server to judge.
      if (typeof access.auth_time === 'number') out.auth_time = access.auth_time
      if (typeof access.acr === 'string') out.acr = access.acr
      return out
    }

    const refresh = await deps.families.lookup(token)
    if (refresh !== null && refresh.current && !refresh.family.revoked && refresh.family.clientId === caller.id) {
      const f = refresh.family
      const deadline = familyDeadline(f, { absoluteTtlMs: deps.config.refreshTokenTtl * 1000, idleTtlMs: deps.config.refreshTokenIdleTtl * 1000, reuseGraceMs: 0 })
      return {
        active: true,
        token_type: 'refresh_token',
        scope: f.scope,
        client_id: f.clientId,
        sub: f.userId,
        exp: Math.floor(deadline / 1000),
        iat: Math.floor(f.lastUsedAt / 1000),
        iss,
        sid: f.id,
      }
    }
    return INACTIVE
  })
}
