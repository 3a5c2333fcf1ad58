import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { ClientConfig, GrantType, TokenEndpointAuthMethod } from './config-file.js'
import { matchesSearch, offsetPage, type ListQuery } from './users.js'

export interface Client {
  id: string
  name: string | undefined
  authMethod: TokenEndpointAuthMethod
  /** SHA-256 of the secret (client secrets are high-entropy, so a fast hash is the right one). */
  secretHash: Buffer | undefined
  grantTypes: ReadonlySet<GrantType>
  /** Scopes the client may request; its default scope when it asks for none. */
  scopes: readonly string[]
  /** The default audience of its access tokens. */
  audience: string
  /** Further audiences it may ask for with `resource` (RFC 8707, metadata `resources`); empty when none. */
  resources: readonly string[]
  redirectUris: readonly string[]
  postLogoutRedirectUris: readonly string[]
  jwks: { keys: Record<string, unknown>[] } | null
  /** OIDC Back-Channel Logout 1.0 §2.2 (logout/): absent = the client is not told. */
  backchannelLogoutUri?: string | undefined
  backchannelLogoutSessionRequired?: boolean
  /** May call /introspect (metadata `introspection`, DESIGN §10.1). */
  introspection: boolean
  /** Its user tokens carry the user's `roles` (metadata `release_roles`, DESIGN §10.1). */
  releaseRoles: boolean
  /** Authorization requests only through PAR (metadata `require_pushed_authorization_requests`, RFC 9126 §6). */
  requirePushedAuthorizationRequests: boolean
  /** Every token request must carry a DPoP proof (metadata `dpop_bound_access_tokens`, RFC 9449 §5.2). */
  dpopBoundAccessTokens: boolean
  /** Every sign-in needs a second factor (metadata `require_mfa`, DESIGN §10.5; mfa/assurance.ts requiredAcr). */
  requireMfa: boolean
  /** Metadata `token_exchange` (RFC 8693, DESIGN §10.4): the audiences it may exchange tokens for; empty = none. */
  tokenExchange: { audiences: readonly string[] }
}

/**
 * The roles a user token of this client carries: none unless the client is allowed them
 * (DESIGN §10.1), so an admin who signs in to a third-party or browser app does not hand it a
 * token that passes the resource service's role checks.
 */
export function releasedRoles(client: Client, roles: readonly string[]): readonly string[] | undefined {
  return client.releaseRoles ? roles : undefined
}

export type AddClientResult = { status: 'created'; client: Client } | { status: 'exists' }

export interface ClientPage {
  clients: Client[]
  /** Pass back to get the next page; null when there is none. */
  cursor: string | null
}

/**
 * Registered clients. `add` takes the config-file form (validated by
 * parseAuthFileConfig) with the secret already hashed (`client_secret_hash`);
 * a plain `client_secret` is hashed on the way in and never stored.
 */
export interface ClientDirectory {
  get(clientId: string): Promise<Client | null>
  add(config: ClientConfig): Promise<AddClientResult>
  /**
   * One page, in no guaranteed order across pages; `limit` is a hint (Redis SCAN); `search`: a
   * case-insensitive substring of the client_id or the client_name.
   */
  list(query?: ListQuery): Promise<ClientPage>
  /** Replaces the secret's hash (`sha256:<base64url>`); null when there is no such client. */
  rotateSecret(clientId: string, secretHash: string): Promise<Client | null>
  /** Removes the client; returns what was removed. */
  delete(clientId: string): Promise<Client | null>
}

/** A new client secret: 256 bits from the CSPRNG, base64url (shown once, stored hashed). */
export function newClientSecret(): string {
  return randomBytes(32).toString('base64url')
}

/** The config-file form of a client, secret hashed, for storage (never a plain secret). */
export function storedClientConfig(c: ClientConfig): ClientConfig {
  const { client_secret, ...rest } = c
  const hash = c.client_secret_hash ?? (client_secret !== undefined ? hashClientSecret(client_secret) : undefined)
  return hash === undefined ? rest : { ...rest, client_secret_hash: hash }
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
    resources: [...(c.resources ?? [])],
    redirectUris: [...c.redirect_uris],
    postLogoutRedirectUris: [...c.post_logout_redirect_uris],
    jwks: c.jwks,
    backchannelLogoutUri: c.backchannel_logout_uri,
    backchannelLogoutSessionRequired: c.backchannel_logout_session_required === true,
    introspection: c.introspection === true,
    // First-party clients (trusted with the user's password) get roles unless they opt out.
    releaseRoles: c.release_roles ?? c.grant_types.includes('password'),
    requirePushedAuthorizationRequests: c.require_pushed_authorization_requests === true,
    dpopBoundAccessTokens: c.dpop_bound_access_tokens === true,
    requireMfa: c.require_mfa === true,
    tokenExchange: { audiences: [...(c.token_exchange?.audiences ?? [])] },
  }
}

export class MemoryClientDirectory implements ClientDirectory {
  readonly #clients = new Map<string, ClientConfig>()
  constructor(clients: readonly ClientConfig[] = []) {
    for (const c of clients) this.#clients.set(c.client_id, storedClientConfig(c))
  }
  async get(clientId: string): Promise<Client | null> {
    const c = this.#clients.get(clientId)
    return c === undefined ? null : clientFromConfig(c)
  }
  async add(config: ClientConfig): Promise<AddClientResult> {
    if (this.#clients.has(config.client_id)) return { status: 'exists' }
    const stored = storedClientConfig(config)
    this.#clients.set(config.client_id, stored)
    return { status: 'created', client: clientFromConfig(stored) }
  }
  async list(query: ListQuery = {}): Promise<ClientPage> {
    const all = [...this.#clients.keys()].sort().map((id) => this.#clients.get(id)!).filter((c) => matchesSearch(query.search, c.client_id, c.client_name))
    const page = offsetPage(all, query)
    return { clients: page.items.map(clientFromConfig), cursor: page.cursor }
  }
  async rotateSecret(clientId: string, secretHash: string): Promise<Client | null> {
    const c = this.#clients.get(clientId)
    if (c === undefined) return null
    const next = { ...c, client_secret_hash: secretHash }
    this.#clients.set(clientId, next)
    return clientFromConfig(next)
  }
  async delete(clientId: string): Promise<Client | null> {
    const c = this.#clients.get(clientId)
    if (c === undefined) return null
    this.#clients.delete(clientId)
    return clientFromConfig(c)
  }
}
