import type { FastifyInstance } from 'fastify'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { revokeFamily } from '../families/family-revocation.js'
import { authenticatedForm } from '../http/caller.js'
import { required } from '../http/form.js'
import { TOKEN_CHECK_BODY, formBody } from '../http/schemas.js'
import { accessTokenChecker } from '../tokens/live-access-token.js'
import { audit } from '../audit/trail.js'

/**
 * POST /revoke (RFC 7009). The caller authenticates as at /token (a public client with its
 * client_id, §2.1). A refresh token revokes its whole family (§2.1: "SHOULD also invalidate all
 * access tokens based on the same authorization grant"), announced on the revocation feed. An
 * access token revokes the family it descends from (its `sid`; §2.1 lets the server revoke the
 * respective refresh token too): resource services that listen drop it at once. An access token
 * without a family (client_credentials) cannot be recalled and lives until its `exp`.
 * Tokens of other clients, unknown, expired or malformed tokens: 200 and nothing happens (§2.2).
 * `token_type_hint` is only a hint: both kinds are tried whatever it says (§2.1).
 */
export async function revokeRoute(app: FastifyInstance, { deps, verifyAssertion }: { deps: AuthDeps; verifyAssertion?: AssertionVerifier }): Promise<void> {
  const checkAccessToken = accessTokenChecker(deps)
  app.post('/revoke', { schema: { body: formBody(TOKEN_CHECK_BODY) } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { params, client } = await authenticatedForm(request, deps, verifyAssertion)
    const token = required(params, 'token')
    const callerId = client.client.id

    const refresh = await deps.families.lookup(token)
    let familyId: string | undefined
    let kind: 'refresh_token' | 'access_token' | 'unknown' = 'unknown'
    if (refresh !== null) {
      kind = 'refresh_token'
      if (refresh.family.clientId === callerId) familyId = refresh.family.id
    } else {
      const access = await checkAccessToken(token)
      if (access !== null) {
        kind = 'access_token'
        // An exchanged token (RFC 8693, `act`) carries the family of the user's sign-in at another
        // client: the service acting for the user may not end that sign-in.
        if (access.client_id === callerId && access.sid !== undefined && access.act === undefined) familyId = access.sid
      }
    }
    const revoked = familyId !== undefined && (await revokeFamily(deps, request.log, familyId, 'revocation'))
    audit(request.log, deps.audit, { event: 'token.revocation', client_id: callerId, token_type: kind, family_id: familyId, revoked, ip: request.ip }, 'revocation request')
    return reply.code(200).send()
  })
}
