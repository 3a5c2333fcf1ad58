import { InvalidGrant } from '@gatehouse/service-kit'
import { required } from '../http/form.js'
import { resolveScope } from '../scope.js'
import { authenticateUser } from '../users.js'
import { issueUserTokens } from './user-tokens.js'
import type { GrantHandler } from './types.js'

/** RFC 6749 §4.3: first-party clients only (the client must enable `password`). */
export const passwordGrant: GrantHandler = async ({ request, params, client, deps }) => {
  const username = required(params, 'username')
  const password = required(params, 'password')
  const scope = resolveScope(params.scope, client.client.scopes)
  const user = await authenticateUser(deps.users, username, password)
  if (!user) {
    deps.metrics.loginFailures.inc({ reason: 'bad_credentials' })
    request.log.info({ event: 'login.failed', client_id: client.client.id, ip: request.ip }, 'login failed')
    throw new InvalidGrant('invalid username or password')
  }
  const authTime = Math.floor(deps.clock() / 1000)
  request.log.info({ event: 'login.succeeded', client_id: client.client.id, sub: user.id, ip: request.ip }, 'login succeeded')
  return await issueUserTokens({ request, deps, client: client.client, user, scope, authTime, grantType: 'password' })
}
