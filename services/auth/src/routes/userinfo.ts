import { assertB64Token, extractBearerToken, type OAuthError } from '@gatehouse/service-kit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'
import { BearerError } from '../http/bearer.js'
import { USERINFO_BODY, formBody } from '../http/schemas.js'
import { splitScope } from '../tokens/scope.js'
import { accessTokenChecker } from '../tokens/live-access-token.js'
import type { User } from '../directory/users.js'

/** OIDC Core §5.4: which claims each scope releases (read from the user's configured claims). */
export const SCOPE_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  profile: ['name', 'family_name', 'given_name', 'middle_name', 'nickname', 'preferred_username', 'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
  email: ['email', 'email_verified'],
}

export function userClaims(user: User, scope: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { sub: user.id }
  for (const s of scope) {
    for (const claim of SCOPE_CLAIMS[s] ?? []) {
      const value = Object.hasOwn(user.claims, claim) ? user.claims[claim] : undefined
      if (value !== undefined) out[claim] = value
    }
  }
  // The username is the natural preferred_username when the config does not set one.
  if (scope.includes('profile') && out.preferred_username === undefined) out.preferred_username = user.username
  return out
}

/** RFC 6750 §2.1 header, or §2.2 form body (POST); never both, never the query (§2.3 is not offered). */
function presentedToken(request: FastifyRequest): string {
  const header = request.headers.authorization
  const isForm = request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true
  // §2.2: only a form-encoded POST body may carry the token.
  const body = request.method === 'POST' && isForm && typeof request.body === 'object' && request.body !== null ? (request.body as Record<string, unknown>).access_token : undefined
  if (header !== undefined && body !== undefined) throw new BearerError('invalid_request', 400, 'use exactly one way of sending the access token')
  if (header !== undefined) {
    // The one RFC 6750 §2.1 parser (service-kit); here another scheme is refused too, not ignored.
    let token: string | null
    try {
      token = extractBearerToken(header)
      if (token !== null) assertB64Token(token)
    } catch (err) {
      throw new BearerError('invalid_request', 400, 'the Authorization header must be "Bearer <token>"', {}, { detail: (err as OAuthError).detail })
    }
    if (token === null) throw new BearerError('invalid_request', 400, 'the Authorization header must be "Bearer <token>"', {}, { detail: 'another scheme' })
    return token
  }
  if (body !== undefined) {
    if (typeof body !== 'string' || body === '') throw new BearerError('invalid_request', 400, 'access_token is malformed')
    return body
  }
  throw new BearerError('invalid_token', 401, 'an access token is required', { missing: true })
}

/** GET|POST /userinfo (OIDC Core §5.3): claims about the user, by the token's scope. */
export async function userinfoRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const checkAccessToken = accessTokenChecker(deps)
  const handler = async (request: FastifyRequest, reply: import('fastify').FastifyReply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const token = presentedToken(request)
    const claims = await checkAccessToken(token)
    if (claims === null) throw new BearerError('invalid_token', 401, 'the access token is invalid, expired or revoked')
    const scope = splitScope(claims.scope)
    if (!scope.includes('openid')) throw new BearerError('insufficient_scope', 403, 'the access token lacks the openid scope', { scope: 'openid' })
    const user = await deps.users.findById(claims.sub)
    // A service token (sub = a client id) names no user; a removed or disabled user has no claims.
    if (user === null || user.disabled) throw new BearerError('invalid_token', 401, 'the access token is invalid, expired or revoked', {}, { detail: 'no such user' })
    return userClaims(user, scope)
  }
  app.get('/userinfo', handler)
  app.post('/userinfo', { schema: { body: formBody(USERINFO_BODY) } }, handler)
}
