import type { FastifyInstance } from 'fastify'
import { UnauthorizedClient } from '@gatehouse/service-kit'
import type { AssertionVerifier } from '../directory/client-auth.js'
import { DEVICE_CODE_GRANT } from '../directory/config-file.js'
import type { AuthDeps } from '../runtime/deps.js'
import { authenticatedForm } from '../http/caller.js'
import { DEVICE_AUTHORIZATION_BODY, formBody } from '../http/schemas.js'
import { resolveScope } from '../tokens/scope.js'
import { formatUserCode } from '../device/device-codes.js'

/** RFC 8628 §3.2. */
export interface DeviceAuthorizationResponse {
  device_code: string
  user_code: string
  verification_uri: string
  verification_uri_complete: string
  expires_in: number
  interval: number
}

/**
 * POST /device_authorization (RFC 8628 §3.1–3.2): the client authenticates as at /token (§3.1:
 * RFC 6749 §3.2.1 applies; a public client names itself), must be allowed the device grant
 * (`unauthorized_client` otherwise), and asks for a scope the client may have. The answer is a
 * new request: the device code (the device's secret), the user code and where to enter it.
 */
export async function deviceAuthorizationRoute(app: FastifyInstance, { deps, verifyAssertion }: { deps: AuthDeps; verifyAssertion?: AssertionVerifier }): Promise<void> {
  app.post('/device_authorization', { schema: { body: formBody(DEVICE_AUTHORIZATION_BODY) } }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { params, client } = await authenticatedForm(request, deps, verifyAssertion)
    const c = client.client
    if (!c.grantTypes.has(DEVICE_CODE_GRANT)) throw new UnauthorizedClient('the client may not use the device authorization grant')
    const scope = resolveScope(params.scope, c.scopes)
    const { deviceCode, request: started } = await deps.device.codes.start({ clientId: c.id, scope })
    request.log.info({ event: 'device.started', client_id: c.id, device_request: started.id }, 'device authorization started')
    const verificationUri = `${deps.config.issuer}/device`
    const userCode = formatUserCode(started.userCode)
    const body: DeviceAuthorizationResponse = {
      device_code: deviceCode,
      user_code: userCode,
      verification_uri: verificationUri,
      verification_uri_complete: `${verificationUri}?${new URLSearchParams({ user_code: userCode })}`,
      expires_in: deps.config.device.codeTtl,
      interval: deps.config.device.pollInterval,
    }
    return body
  })
}
