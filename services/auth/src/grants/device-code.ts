import { AuthorizationPending, ExpiredToken, InvalidGrant, OAuthError, SlowDown } from '@gatehouse/service-kit'
import { DEVICE_CODE_GRANT } from '../directory/config-file.js'
import { required } from '../http/form.js'
import { allowedResources, requestedResource, tokenAudience } from '../tokens/resource-indicators.js'
import { issueUserTokens } from './user-tokens.js'
import type { GrantHandler } from './types.js'

const REJECTED = 'the device code is invalid, expired or was already used'

/**
 * RFC 8628 §3.4–3.5: the device polls with its device code. The store answers in one atomic step
 * (device/device-codes.ts): still pending (`authorization_pending`), polled sooner than the
 * interval (`slow_down`, and the interval is 5 s longer from then on), denied (`access_denied`),
 * expired (`expired_token`), or approved, and then consumed: the first successful poll gets the
 * tokens, any later one `invalid_grant`. A code of another client is `invalid_grant` (RFC 6749
 * §5.2) and changes nothing for its own client. Tokens are user tokens like any other: a refresh
 * family (revocable by the user's "sign out everywhere", a password change, an admin), a refresh
 * token only for a client allowed the refresh grant.
 */
export const deviceCodeGrant: GrantHandler = async ({ request, params, resources, client, deps, dpop }) => {
  const deviceCode = required(params, 'device_code')
  const c = client.client
  // RFC 8707, as for the password grant: the family is granted every resource the client is
  // allowed, this token is for one; checked before the poll, so a bad resource spends nothing.
  const granted = allowedResources(c)
  const audience = tokenAudience(requestedResource(resources, c), granted, c) ?? c.audience
  const outcome = await deps.device.codes.poll(deviceCode, c.id)
  switch (outcome.status) {
    case 'pending':
      throw new AuthorizationPending()
    case 'slow_down':
      throw new SlowDown(`polling too fast: wait at least ${outcome.interval} seconds between requests`)
    case 'denied':
      // §3.5 lists access_denied among the token endpoint's errors: 400 there, as every §5.2 error.
      throw new OAuthError('access_denied', 400, 'the user denied the authorization request')
    case 'expired':
      throw new ExpiredToken()
    case 'wrong_client':
      request.log.warn({ event: 'device.wrong_client', client_id: c.id, ip: request.ip }, 'a device code polled by another client')
      throw new InvalidGrant(REJECTED, { detail: 'issued to another client' })
    case 'not_found':
      throw new InvalidGrant(REJECTED, { detail: 'unknown or used' })
    case 'approved':
      break
  }
  const r = outcome.request
  const user = r.userId === undefined ? null : await deps.users.findById(r.userId)
  if (user === null || user.disabled || r.authTime === undefined) throw new InvalidGrant(REJECTED, { detail: 'user gone or disabled' })
  return await issueUserTokens({ request, deps, client: c, user, scope: r.scope, audience, resources: granted, authTime: r.authTime, grantType: DEVICE_CODE_GRANT, dpop })
}
