import { InvalidGrant } from '@gatehouse/service-kit'
import { required } from '../http/form.js'
import { resolveScope } from '../tokens/scope.js'
import { allowedResources, requestedResource, tokenAudience } from '../tokens/resource-indicators.js'
import { issueUserTokens } from './user-tokens.js'
import { audit } from '../audit/trail.js'
import { secondStepNeeded } from '../signin/second-step.js'
import { AMR_PASSWORD } from '../mfa/assurance.js'
import type { GrantHandler } from './types.js'

/**
 * RFC 6749 §4.3: first-party clients only (the client must enable `password`). §4.3.2: "the
 * authorization server MUST protect the endpoint against brute force attacks": every check goes
 * through the login gate (attempt limits, progressive delay), and a locked account, an unknown
 * user and a wrong password get the same answer. A user with a TOTP or a passkey is refused
 * (`invalid_grant`) once the password is right: this grant has no second step.
 */
export const passwordGrant: GrantHandler = async ({ request, params, resources, client, deps, dpop }) => {
  const username = required(params, 'username')
  const password = required(params, 'password')
  const scope = resolveScope(params.scope, client.client.scopes)
  // RFC 8707: the family is granted every resource the client is allowed; this token is for one.
  const granted = allowedResources(client.client)
  const audience = tokenAudience(requestedResource(resources, client.client), granted, client.client) ?? client.client.audience
  const outcome = await deps.loginGate.authenticate({
    users: deps.users,
    username,
    password,
    address: request.ip,
    clientId: client.client.id,
    log: request.log,
    metrics: deps.metrics,
    audit: deps.audit,
  })
  if (!outcome.ok) throw new InvalidGrant('invalid username or password')
  const user = outcome.user
  // No second step here: a user who has one signs in through the browser (DESIGN §10.5), else a
  // stolen password alone would be enough at /token.
  if (secondStepNeeded(await deps.factors.list(user.id))) {
    request.log.info({ event: 'login.second_factor_required', client_id: client.client.id, sub: user.id, ip: request.ip }, 'password grant refused: the user has a second factor')
    throw new InvalidGrant('this user signs in with a second factor: use the authorization code flow')
  }
  const authTime = Math.floor(deps.clock() / 1000)
  audit(request.log, deps.audit, { event: 'login.succeeded', client_id: client.client.id, sub: user.id, amr: [...AMR_PASSWORD], ip: request.ip }, 'login succeeded')
  return await issueUserTokens({ request, deps, client: client.client, user, scope, audience, resources: granted, authTime, grantType: 'password', dpop, amr: AMR_PASSWORD })
}
