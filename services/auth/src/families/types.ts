/**
 * Refresh-token families (DESIGN §5): the domain interface both stores
 * implement. Verbs, not CRUD. Stores throw only for infrastructure failures
 * (StoreUnavailable); every protocol outcome is a value.
 */

export interface FamilyPolicy {
  /** Absolute family lifetime, fixed at creation (REFRESH_TOKEN_TTL). */
  absoluteTtlMs: number
  /** A family unused this long expires (REFRESH_TOKEN_IDLE_TTL); slides beneath the absolute expiry. */
  idleTtlMs: number
  /** A just-rotated token may be retried this long (REFRESH_REUSE_GRACE). */
  reuseGraceMs: number
}

export interface FamilyInput {
  userId: string
  clientId: string
  /** Space-separated granted scope. */
  scope: string
  /** The login (cookie) session this family belongs to, for logout; absent for the password grant. */
  sessionId?: string
  /** When the user authenticated, seconds since the epoch (the `auth_time` claim). */
  authTime: number
  /**
   * The resources (audiences) granted (RFC 8707; DESIGN §10.3): each refresh picks one of them.
   * Absent on a family made before resource indicators: the client's audience at refresh time.
   */
  resources?: readonly string[]
  /** A public client's family is bound to the DPoP key of its first proof (RFC 9449 §5): its thumbprint. */
  jkt?: string
  /**
   * How the user authenticated (RFC 8176 values, mfa/assurance.ts): the `amr` and `acr` of the ID
   * tokens issued at refresh, the same as the first one's (OIDC Core §12.2). Absent when unknown
   * (families made before, or without a sign-in: token exchange).
   */
  amr?: readonly string[]
  /** The access tokens carry `acr` (RFC 9068 §2.2.1): the authorization asked for one (acr_values, require_mfa). */
  acrInAccessTokens?: boolean
}

export interface Family {
  /** Random id; also the `sid` claim of access tokens descended from this family. */
  id: string
  userId: string
  clientId: string
  scope: string
  sessionId?: string
  authTime: number
  /** The granted resources (see FamilyInput); absent on older families. */
  resources?: readonly string[]
  /** The DPoP key every rotation must prove (RFC 9449 §5); absent for an unbound family. */
  jkt?: string
  /** How the user authenticated (see FamilyInput); absent when unknown. */
  amr?: readonly string[]
  /** See FamilyInput; absent: false. */
  acrInAccessTokens?: boolean
  /** ms epoch */
  createdAt: number
  /** ms epoch; absolute expiry, never extended */
  expiresAt: number
  /** ms epoch */
  lastUsedAt: number
  /** Generation of the current (only valid) refresh token; starts at 0. */
  generation: number
  revoked: boolean
}

export type RotateOutcome =
  /** The presented token was current; here is its successor. */
  | { status: 'rotated'; family: Family; refreshToken: string }
  /** The immediate predecessor, same client, within the grace window: the SAME successor again. */
  | { status: 'retried'; family: Family; refreshToken: string }
  /** A spent token outside the grace rule: the family has just been revoked. */
  | { status: 'reused'; family: Family }
  /** Unknown, malformed or forged (a token that merely names a family). No state changed. */
  | { status: 'not_found' }
  /** The family was already revoked. */
  | { status: 'revoked'; family: Family }
  /** Absolute or idle expiry passed. */
  | { status: 'expired' }
  /** A genuine token presented by another client (RFC 6749 §6). No state changed. */
  | { status: 'client_mismatch'; family: Family }
  /**
   * The family is bound to a DPoP key and the request proved none or another (RFC 9449 §5).
   * Checked before anything else about the token: no state changed, nothing spent or revoked.
   */
  | { status: 'key_mismatch'; family: Family }
  /**
   * A spent token in a request made BEFORE the family's last rotation (its `now` is older than
   * the family's lastUsedAt): a delayed duplicate of a request the client already gave up on,
   * e.g. a command a Redis client re-sent after a failover. Not reuse; no state changed.
   */
  | { status: 'stale' }

export type RevokeReason = 'reuse' | 'logout' | 'revocation' | 'password_change' | 'user_disabled' | 'admin' | 'code_replay'

/** Who presents a refresh token, and with which DPoP key. */
export interface RotateContext {
  clientId: string
  /** The thumbprint of the DPoP key the request proved, if any; a bound family rotates only with its own key. */
  jkt?: string
  /**
   * Bind an unbound family to `jkt` in the same step as it rotates (RFC 9449 §5: a public
   * client's refresh token MUST be bound to the key of the proof it presents).
   */
  bind?: boolean
}

export interface FamilyStore {
  /** Starts a family; returns it with its first refresh token (generation 0). */
  create(input: FamilyInput): Promise<{ family: Family; refreshToken: string }>
  /** One atomic step (one round trip for Redis). */
  rotate(refreshToken: string, ctx: RotateContext): Promise<RotateOutcome>
  /** The live or revoked family, or null when unknown or expired. */
  get(familyId: string): Promise<Family | null>
  /**
   * The family a genuine refresh token names, or null (bad MAC, unknown, expired).
   * For /revoke and /introspect; no state change.
   */
  lookup(refreshToken: string): Promise<{ family: Family; current: boolean } | null>
  /** Revokes a family; returns it if it was live (not already revoked or gone). */
  revoke(familyId: string, reason: RevokeReason): Promise<Family | null>
  /** Revokes every live family of a user; returns those revoked. */
  revokeByUser(userId: string, reason: RevokeReason): Promise<Family[]>
  /** Revokes every live family of a login session; returns those revoked. */
  revokeBySession(sessionId: string, reason: RevokeReason): Promise<Family[]>
  /** Live (not revoked, not expired) families of a user. */
  listByUser(userId: string): Promise<Family[]>
  /** Throws StoreUnavailable when the backend cannot be reached. */
  ping(): Promise<void>
  close(): Promise<void>
}
