import { OAuthError, assertB64Token, extractAccessToken, type PresentedAccessToken } from '@gatehouse/service-kit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'
import { BearerError } from '../http/bearer.js'
import { USERINFO_BODY, formBody } from '../http/schemas.js'
import { splitScope } from '../tokens/scope.js'
import { accessTokenChecker } from '../tokens/live-access-token.js'
import type { User } from '../directory/users.js'
import { offerNonce, presentedTokenProof } from '../dpop/proofs.js'

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

/**
 * RFC 6750 §2.1 header (`Bearer`, or `DPoP` with a proof: RFC 9449 §7.1), or §2.2 form body
 * (POST, a Bearer presentation); never both, never the query (§2.3 is not offered).
 */
function presentedToken(request: FastifyRequest): PresentedAccessToken {
  const header = request.headers.authorization
  const isForm = request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true
  // §2.2: only a form-encoded POST body may carry the token.
  const body = request.method === 'POST' && isForm && typeof request.body === 'object' && request.body !== null ? (request.body as Record<string, unknown>).access_token : undefined
  if (header !== undefined && body !== undefined) throw new BearerError('invalid_request', 400, 'use exactly one way of sending the access token')
  if (header !== undefined) {
    // The one parser of Bearer and DPoP credentials (service-kit); another scheme is refused, not ignored.
    let presented: PresentedAccessToken | null
    try {
      presented = extractAccessToken(header)
      if (presented !== null) assertB64Token(presented.token)
    } catch (err) {
      throw new BearerError('invalid_request', 400, MALFORMED_AUTHORIZATION, {}, { detail: (err as OAuthError).detail })
    }
    if (presented === null) throw new BearerError('invalid_request', 400, MALFORMED_AUTHORIZATION, {}, { detail: 'another scheme' })
    return presented
  }
  if (body !== undefined) {
    if (typeof body !== 'string' || body === '') throw new BearerError('invalid_request', 400, 'access_token is malformed')
    return { scheme: 'Bearer', token: body }
  }
  throw new BearerError('invalid_token', 401, 'an access token is required', { missing: true })
}

const MALFORMED_AUTHORIZATION = 'the Authorization header must be "Bearer <token>" or "DPoP <token>"'

/**
 * An error of a DPoP presentation, or of the sender constraint of a Bearer one (a DPoP-bound token
 * sent as Bearer), as the endpoint's challenge: RFC 9449 §7.1, a proof problem is a 401 like a
 * token problem, and a DPoP request is answered with a `DPoP` challenge.
 */
function challenge(err: unknown, scheme: 'Bearer' | 'DPoP'): unknown {
  if (!(err instanceof OAuthError)) return err
  if (err instanceof BearerError) {
    if (scheme === 'Bearer' || err.scheme === 'DPoP') return err
    return new BearerError(err.code, err.statusCode, err.description, { scheme, ...(err.scope === undefined ? {} : { scope: err.scope }) }, { detail: err.detail })
  }
  const status = err.code === 'invalid_token' || err.code === 'invalid_dpop_proof' || err.code === 'use_dpop_nonce' ? 401 : err.statusCode
  // A DPoP-bound token sent as Bearer (§7.2): the challenge says how to present it.
  const as = err.detail === 'dpop_downgrade' ? 'DPoP' : scheme
  return new BearerError(err.code, status, err.description, { scheme: as }, { detail: err.detail })
}

/** GET|POST /userinfo (OIDC Core §5.3): claims about the user, by the token's scope. */
export async function userinfoRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const checkAccessToken = accessTokenChecker(deps)
  const claimsFor = async (request: FastifyRequest, presented: PresentedAccessToken) => {
    const claims = await checkAccessToken(presented.token)
    if (claims === null) throw new BearerError('invalid_token', 401, 'the access token is invalid, expired or revoked')
    // RFC 9449 §7: a DPoP-bound token only with a proof of its key; a bearer token only as Bearer.
    await presentedTokenProof(request, deps, presented, claims.cnf?.jkt, '/userinfo')
    const scope = splitScope(claims.scope)
    if (!scope.includes('openid')) throw new BearerError('insufficient_scope', 403, 'the access token lacks the openid scope', { scope: 'openid' })
    const user = await deps.users.findById(claims.sub)
    // A service token (sub = a client id) names no user; a removed or disabled user has no claims.
    if (user === null || user.disabled) throw new BearerError('invalid_token', 401, 'the access token is invalid, expired or revoked', {}, { detail: 'no such user' })
    return userClaims(user, scope)
  }
  const handler = async (request: FastifyRequest, reply: import('fastify').FastifyReply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const presented = presentedToken(request)
    offerNonce(request, reply, deps, presented.scheme === 'DPoP')
    try {
      return await claimsFor(request, presented)
    } catch (err) {
      throw challenge(err, presented.scheme)
    }
  }
  app.get('/userinfo', handler)
  app.post('/userinfo', { schema: { body: formBody(USERINFO_BODY) } }, handler)
}
