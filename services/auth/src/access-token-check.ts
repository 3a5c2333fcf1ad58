import { errors, jwtVerify, type JWTPayload } from 'jose'
import type { AuthDeps } from './runtime/deps.js'
import { localKeySet } from './tokens/id-token.js'

/** The claims of one of our access tokens that is live right now (RFC 9068 §2.2). */
export interface LiveAccessToken extends JWTPayload {
  sub: string
  client_id: string
  scope: string
  exp: number
  iat: number
  jti: string
  sid?: string
  roles?: string[]
}

const MAX_TOKEN_LENGTH = 8192

/**
 * Checks an access token the way a resource server would (DESIGN §4), with our own keys:
 * RS256 only, `typ` at+jwt (an ID token is not an access token, RFC 9068 §4), our `iss`, `exp`;
 * and, since we hold the families, that the family it descends from (`sid`) is not revoked.
 * Returns null for anything that is not a live access token; store failures surface
 * (StoreUnavailable → 503).
 */
export async function checkAccessToken(deps: AuthDeps, token: string): Promise<LiveAccessToken | null> {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null
  let payload: JWTPayload
  try {
    ;({ payload } = await jwtVerify(token, localKeySet(deps.keys), {
      algorithms: ['RS256'],
      typ: 'at+jwt',
      issuer: deps.config.issuer,
      currentDate: new Date(deps.clock()),
      requiredClaims: ['exp', 'iat', 'sub', 'jti'],
    }))
  } catch (err) {
    if (err instanceof errors.JOSEError || err instanceof TypeError || err instanceof SyntaxError) return null
    throw err
  }
  if (typeof payload.client_id !== 'string' || typeof payload.scope !== 'string') return null
  if (payload.sid !== undefined) {
    if (typeof payload.sid !== 'string') return null
    const family = await deps.families.get(payload.sid)
    if (family === null || family.revoked) return null
  }
  return payload as LiveAccessToken
}
