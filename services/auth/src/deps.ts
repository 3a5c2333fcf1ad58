import type { AuthConfig } from './config.js'
import type { ClientDirectory } from './clients.js'
import type { KeyRing } from './keys.js'
import type { AuthMetrics } from './metrics.js'
import type { RevocationPublisher } from './revocation-publisher.js'
import type { FamilyStore } from './store/types.js'
import type { AccessTokenIssuer } from './tokens.js'
import type { UserDirectory } from './users.js'

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
  /** Resolves when the store answers; throws StoreUnavailable otherwise. */
  ping(): Promise<void>
}
