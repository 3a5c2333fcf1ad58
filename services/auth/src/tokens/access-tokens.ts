import { randomFillSync, sign } from 'node:crypto'
import type { KeyRing, SigningKey } from '../keys/signing-keys.js'

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
  /** RFC 9068 §2.2.1: how the user authenticated (mfa/assurance.ts), when the authorization asked for it. */
  acr?: string
  /** The DPoP key the token is bound to (RFC 9449 §6.1): its thumbprint, as `cnf.jkt`. */
  jkt?: string
  /** RFC 8693 §4.1: who acts for the subject (token exchange); nested for a chain, the current actor outermost. */
  act?: Actor
  /** Seconds since the epoch: `exp` is never later (an exchanged token outlives not its subject token). */
  notAfter?: number
}

/** RFC 8693 §4.1 `act` claim: the acting party, and who acted before it. */
export interface Actor {
  sub: string
  act?: Actor
}

export interface IssuedAccessToken {
  token: string
  jti: string
  /** seconds */
  expiresIn: number
  /** seconds since the epoch */
  exp: number
}

/**
 * 128 random bits, base64url: a token's `jti` (RFC 7519 §4.1.7). Drawn from a pool refilled from
 * the CSPRNG 256 ids at a time, each slice used once (as node's randomUUID does): a randomBytes
 * call per token costs about 5 µs, a slice of the pool about 0.1 µs.
 */
const JTI_BYTES = 16
const jtiPool = Buffer.alloc(JTI_BYTES * 256)
let jtiOffset = jtiPool.length
function newJti(): string {
  if (jtiOffset >= jtiPool.length) {
    randomFillSync(jtiPool)
    jtiOffset = 0
  }
  const id = jtiPool.toString('base64url', jtiOffset, jtiOffset + JTI_BYTES)
  jtiOffset += JTI_BYTES
  return id
}

/**
 * Signs access tokens (RFC 9068) as compact JWS with RS256 (RFC 7515 §7.1, RFC 7518 §3.3:
 * RSASSA-PKCS1-v1_5 with SHA-256). This is the auth service's hot path, so it is written out
 * rather than built through jose's SignJWT: the protected header of each key is encoded once,
 * and the signature is one synchronous node:crypto call with the KeyObject imported when the key
 * set was loaded. Synchronous on purpose: the RSA private-key operation is CPU work wherever it
 * runs, and doing it on the calling thread saves the thread-pool hand-off and its promise, which a
 * profile of POST /token showed to matter (docs/performance.md). One process signs on one core;
 * more cores mean more processes (replicas, or node's cluster).
 */
export class AccessTokenIssuer {
  /** The base64url protected header of each signing key, encoded on its first use. */
  readonly #headers = new WeakMap<SigningKey, string>()

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
    const exp = c.notAfter === undefined ? iat + this.ttlSeconds : Math.min(iat + this.ttlSeconds, c.notAfter)
    const jti = newJti()
    const payload: Record<string, unknown> = { iss: this.issuer, sub: c.sub, aud: c.audience, exp, iat, jti, client_id: c.clientId, scope: c.scope }
    if (c.roles) payload.roles = [...c.roles]
    if (c.sid) payload.sid = c.sid
    if (c.authTime !== undefined) payload.auth_time = c.authTime
    if (c.acr !== undefined) payload.acr = c.acr
    if (c.jkt !== undefined) payload.cnf = { jkt: c.jkt }
    if (c.act !== undefined) payload.act = c.act
    const input = `${this.#header(active)}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
    const signature = sign('sha256', Buffer.from(input), active.privateKey).toString('base64url')
    return { token: `${input}.${signature}`, jti, expiresIn: exp - iat, exp }
  }

  #header(key: SigningKey): string {
    let h = this.#headers.get(key)
    if (h === undefined) {
      // RFC 9068 §2.1: typ "at+jwt"; the kid names the key in /jwks.json.
      h = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: key.kid })).toString('base64url')
      this.#headers.set(key, h)
    }
    return h
  }
}
