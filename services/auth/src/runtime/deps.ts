import type { AuthConfig } from '../config.js'
import type { ClientDirectory } from '../directory/clients.js'
import type { AuthorizationCodeStore } from '../authorize/codes.js'
import type { KeyRing } from '../keys/signing-keys.js'
import type { LoginGate } from '../signin/login-gate.js'
import type { BackchannelLogout } from '../logout/backchannel.js'
import type { AuthMetrics } from './metrics.js'
import type { ReplayStore } from '../directory/replay.js'
import type { RevocationPublisher } from '../families/revocation-publisher.js'
import type { LoginSessionStore } from '../signin/sessions.js'
import type { FamilyStore } from '../families/types.js'
import type { AccessTokenIssuer } from '../tokens/access-tokens.js'
import type { UserDirectory } from '../directory/users.js'
import type { AuditTrail } from '../audit/trail.js'
import type { ResourceCatalog } from '../directory/resources.js'
import type { PushedRequestStore } from '../par/request-store.js'
import type { DpopDeps } from '../dpop/proofs.js'
import type { DeviceFlow } from '../device/device-flow.js'
import type { FactorStore } from '../mfa/factors.js'

/** What the auth app is built from; passed explicitly, never looked up. */
export interface AuthDeps {
  config: AuthConfig
  /** ms since the epoch */
  clock: () => number
  families: FamilyStore
  users: UserDirectory
  clients: ClientDirectory
  keys: KeyRing
  tokens: AccessTokenIssuer
  metrics: AuthMetrics
  revocations: RevocationPublisher
  /** Browser login sessions (the `gh_session` cookie). */
  sessions: LoginSessionStore
  /** Authorization codes (hashed, single use). */
  codes: AuthorizationCodeStore
  /** Pushed authorization requests (RFC 9126): kept by the hash of their reference, single use. */
  pushedRequests: PushedRequestStore
  /** Seen client-assertion jtis (private_key_jwt replay protection). */
  assertionReplay: ReplayStore
  /** Every password check: attempt limits per username and address, progressive delay, the KDF. */
  loginGate: LoginGate
  /** Back-channel logout (OIDC Back-Channel Logout 1.0): told when a login session ends. */
  backchannel: BackchannelLogout
  /** The audit trail: record() never waits (audit/). */
  audit: AuditTrail
  /** Resolves when the store answers; throws StoreUnavailable otherwise. */
  ping(): Promise<void>
  /** With Redis: false while the users and clients are missing from the store (being seeded again; seed.ts). */
  directoryReady?: () => Promise<boolean>
  /** The resource services (audiences and scopes), held in memory. */
  resources: ResourceCatalog
  /** With DATABASE_URL: resolves when PostgreSQL answers; throws StoreUnavailable otherwise. */
  pingDatabase?: () => Promise<void>
  /** DPoP (RFC 9449): the proof replay cache (Redis when configured) and the server nonces (dpop/). */
  dpop: DpopDeps
  /** The device authorization grant (RFC 8628): its requests and the user-code guessing limits. */
  device: DeviceFlow
  /** Second factors (TOTP, passkeys, recovery codes; mfa/): PostgreSQL with DATABASE_URL, else Redis, else memory. */
  factors: FactorStore
}
