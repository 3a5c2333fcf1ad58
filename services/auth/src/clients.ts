import { createHash, timingSafeEqual } from 'node:crypto'
import type { ClientConfig, GrantType, TokenEndpointAuthMethod } from './config-file.js'

export interface Client {
  id: string
  name: string | undefined
  authMethod: TokenEndpointAuthMethod
  /** SHA-256 of the secret (client secrets are high-entropy, so a fast hash is the right one). */
  secretHash: Buffer | undefined
  grantTypes: ReadonlySet<GrantType>
  /** Scopes the client may request; its default scope when it asks for none. */
  scopes: readonly string[]
  audience: string
  redirectUris: readonly string[]
  postLogoutRedirectUris: readonly string[]
  jwks: { keys: Record<string, unknown>[] } | null
}

export interface ClientDirectory {
  get(clientId: string): Promise<Client | null>
}

export function hashClientSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('base64url')}`
}

function secretDigest(stored: string): Buffer {
  return Buffer.from(stored.slice('sha256:'.length), 'base64url')
}

/** Constant-time check of a presented secret against the stored digest. */
export function checkClientSecret(client: Client | null, presented: string): boolean {
  const given = createHash('sha256').update(presented).digest()
  // Compare against a zero digest for unknown clients so timing does not tell.
  const expected = client?.secretHash ?? Buffer.alloc(32)
  return timingSafeEqual(given, expected) && client?.secretHash !== undefined
}

export function clientFromConfig(c: ClientConfig): Client {
  const stored = c.client_secret_hash ?? (c.client_secret !== undefined ? hashClientSecret(c.client_secret) : undefined)
  return {
    id: c.client_id,
    name: c.client_name,
    authMethod: c.token_endpoint_auth_method,
    secretHash: stored ? secretDigest(stored) : undefined,
    grantTypes: new Set(c.grant_types),
    scopes: c.scope.split(' ').filter(Boolean),
    audience: c.audience,
    redirectUris: [...c.redirect_uris],
    postLogoutRedirectUris: [...c.post_logout_redirect_uris],
    jwks: c.jwks,
  }
}

export class MemoryClientDirectory implements ClientDirectory {
  readonly #clients = new Map<string, Client>()
  constructor(clients: readonly ClientConfig[]) {
    for (const c of clients) this.#clients.set(c.client_id, clientFromConfig(c))
  }
  async get(clientId: string): Promise<Client | null> {
    return this.#clients.get(clientId) ?? null
  }
}
