import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import type { KeyRing } from './keys.js'

/** What an access token says (RFC 9068 §2.2; DESIGN §3). */
export interface AccessTokenClaims {
  sub: string
  clientId: string
  audience: string
  scope: string
  /** User tokens only. */
  roles?: readonly string[]
  /** The refresh family (or session) the token descends from; absent for client_credentials. */
  sid?: string
  /** Seconds; where a user logged in. */
  authTime?: number
}

export interface IssuedAccessToken {
  token: string
  jti: string
  /** seconds */
  expiresIn: number
  /** seconds since the epoch */
  exp: number
}

export class AccessTokenIssuer {
  constructor(
    private readonly issuer: string,
    private readonly keys: KeyRing,
    private readonly ttlSeconds: number,
    private readonly clock: () => number,
  ) {}

  get ttl(): number {
    return this.ttlSeconds
  }

  async issue(c: AccessTokenClaims): Promise<IssuedAccessToken> {
    const { active } = this.keys.current()
    const iat = Math.floor(this.clock() / 1000)
    const exp = iat + this.ttlSeconds
    const jti = randomBytes(16).toString('base64url')
    const payload: Record<string, unknown> = { client_id: c.clientId, scope: c.scope, jti }
    if (c.roles) payload.roles = [...c.roles]
    if (c.sid) payload.sid = c.sid
    if (c.authTime !== undefined) payload.auth_time = c.authTime
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: active.kid })
      .setIssuer(this.issuer)
      .setSubject(c.sub)
      .setAudience(c.audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(active.privateKey)
    return { token, jti, expiresIn: this.ttlSeconds, exp }
  }
}
