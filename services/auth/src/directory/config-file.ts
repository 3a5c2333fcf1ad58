import { readFile } from 'node:fs/promises'
import { backchannelLogoutUriProblem } from '../logout/client-metadata.js'
import { passwordHashProblem } from './password-hashes.js'
import { resourceUriProblem } from '../tokens/resource-indicators.js'
import { emailProblem } from './users.js'

/**
 * The AUTH_CONFIG_FILE schema (DESIGN §3): resources, clients, users. Parsed
 * by hand into typed records, collecting every problem with its path.
 */
export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none'
export const AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']
/** RFC 8693 §2.1: the token-exchange grant (DESIGN §10.4). */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const GRANT_TYPES = ['password', 'refresh_token', 'authorization_code', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', TOKEN_EXCHANGE_GRANT] as const
/** RFC 8628 §3.4: the device authorization grant's `grant_type`. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code' satisfies GrantType
export type GrantType = (typeof GRANT_TYPES)[number]

export interface ResourceConfig {
  audience: string
  scopes: string[]
}

export interface ClientConfig {
  client_id: string
  client_name?: string
  token_endpoint_auth_method: TokenEndpointAuthMethod
  client_secret?: string
  client_secret_hash?: string
  grant_types: GrantType[]
  scope: string
  audience: string
  /**
   * RFC 8707 (DESIGN §10.3): further audiences the client may ask for with `resource`; `audience`
   * stays the default. Absent when none.
   */
  resources?: string[]
  redirect_uris: string[]
  post_logout_redirect_uris: string[]
  jwks: { keys: Record<string, unknown>[] } | null
  /** OIDC Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed. */
  backchannel_logout_uri?: string
  /** §2.2: the client needs `sid` in logout tokens (ours always carry it); default false. */
  backchannel_logout_session_required?: boolean
  /** May call /introspect (RFC 7662 §2.1; DESIGN §10.1); false when absent. */
  introspection?: boolean
  /** The user's `roles` go into its tokens (DESIGN §10.1); absent: true only with the password grant. */
  release_roles?: boolean
  /** RFC 9126 §6: the client may start an authorization only with a pushed request (request_uri); false when absent. */
  require_pushed_authorization_requests?: boolean
  /** RFC 9449 §5.2: the client always uses DPoP, so a token request without a proof is refused; false when absent. */
  dpop_bound_access_tokens?: boolean
  /**
   * DESIGN §10.5: every sign-in to this client needs a second factor (acr ACR_MFA or stronger,
   * mfa/assurance.ts), also when answered from an existing login session; false when absent.
   */
  require_mfa?: boolean
  /** RFC 8693 (DESIGN §10.4): the audiences this client may exchange a subject token for. */
  token_exchange?: { audiences: string[] }
}

export interface UserConfig {
  username: string
  /** Unique case-insensitively; the user may sign in with it. */
  email?: string
  password?: string
  password_hash?: string
  roles: string[]
  claims: Record<string, unknown>
  disabled: boolean
}

export interface AuthFileConfig {
  resources: ResourceConfig[]
  clients: ClientConfig[]
  users: UserConfig[]
}

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/ // RFC 6749 §3.3 scope-token

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost'])

/**
 * Why a redirect (or post-logout redirect) URI may not be registered, or null. RFC 9700 §2.1 and
 * §4.1.1 and RFC 8252 §7: https; plain http only to a loopback address (a native app's local
 * listener, or development: anyone on the path reads a code sent over http elsewhere); or a
 * private-use scheme in reverse-domain form (`com.example.app:/cb`, RFC 8252 §7.1) for native
 * apps. Never `javascript:`, `data:` or other schemes a browser would run or render, never a
 * fragment (RFC 6749 §3.1.2), never credentials in the URI.
 */
export function redirectUriProblem(uri: string): string | null {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return 'is not an absolute URL'
  }
  if (url.hash || uri.includes('#')) return 'must not have a fragment (RFC 6749 §3.1.2)'
  if (url.username || url.password) return 'must not carry credentials'
  const scheme = url.protocol.slice(0, -1)
  if (scheme === 'https') return url.hostname ? null : 'has no host'
  if (scheme === 'http') return LOOPBACK_HOSTS.has(url.hostname) ? null : 'uses plain http on a host that is not loopback: use https (http only for 127.0.0.1, [::1] or localhost; RFC 9700 §2.1, RFC 8252 §7.3)'
  // RFC 8252 §7.1: a private-use scheme is a reverse domain name the app owns (at least one dot).
  if (/^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$/.test(scheme)) return null
  return `uses the scheme "${scheme}:", which is not allowed: use https, http on a loopback address, or a private-use scheme such as com.example.app: for native apps (RFC 8252 §7, RFC 9700 §2.1)`
}

/** Client metadata `token_exchange: { audiences: [...] }` (DESIGN §10.4): absent, or non-empty strings without whitespace. */
function tokenExchangeMetadata(v: unknown, path: string, p: (path: string, msg: string) => void): { audiences: string[] } | undefined {
  if (v === undefined || v === null) return undefined
  if (!isObj(v) || !Array.isArray(v.audiences) || v.audiences.some((a) => typeof a !== 'string' || a.length === 0 || /\s/.test(a))) {
    p(path, 'must be {"audiences": [...]}, a list of audiences without whitespace')
    return undefined
  }
  return { audiences: [...new Set(v.audiences as string[])] }
}

export function parseAuthFileConfig(doc: unknown, source: string): { config: AuthFileConfig; problems: string[] } {
  const problems: string[] = []
  const p = (path: string, msg: string) => problems.push(`${source}: ${path} ${msg}`)
  const config: AuthFileConfig = { resources: [], clients: [], users: [] }
  if (!isObj(doc)) {
    p('(root)', 'must be a JSON object')
    return { config, problems }
  }
  const strList = (v: unknown, path: string): string[] => {
    if (v === undefined) return []
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      p(path, 'must be an array of strings')
      return []
    }
    return v as string[]
  }
  const str = (v: unknown, path: string, required: boolean): string | undefined => {
    if (v === undefined || v === null) {
      if (required) p(path, 'is required')
      return undefined
    }
    if (typeof v !== 'string' || v.length === 0) {
      p(path, 'must be a non-empty string')
      return undefined
    }
    return v
  }

  const resources = doc.resources ?? []
  if (!Array.isArray(resources)) p('resources', 'must be an array')
  else
    resources.forEach((r, i) => {
      const path = `resources[${i}]`
      if (!isObj(r)) return p(path, 'must be an object')
      const audience = str(r.audience, `${path}.audience`, true)
      const scopes = strList(r.scopes, `${path}.scopes`)
      for (const s of scopes) if (!SCOPE_TOKEN.test(s)) p(`${path}.scopes`, `has an invalid scope ${JSON.stringify(s)}`)
      if (audience) config.resources.push({ audience, scopes })
    })

  const clients = doc.clients ?? []
  const ids = new Set<string>()
  if (!Array.isArray(clients)) p('clients', 'must be an array')
  else
    clients.forEach((c, i) => {
      const path = `clients[${i}]`
      if (!isObj(c)) return p(path, 'must be an object')
      const client_id = str(c.client_id, `${path}.client_id`, true)
      if (client_id) {
        if (ids.has(client_id)) p(`${path}.client_id`, `duplicates ${client_id}`)
        ids.add(client_id)
      }
      const method = (c.token_endpoint_auth_method ?? 'client_secret_basic') as TokenEndpointAuthMethod
      if (!AUTH_METHODS.includes(method)) p(`${path}.token_endpoint_auth_method`, `must be one of ${AUTH_METHODS.join(', ')}`)
      const client_secret = str(c.client_secret, `${path}.client_secret`, false)
      const client_secret_hash = str(c.client_secret_hash, `${path}.client_secret_hash`, false)
      if (client_secret_hash && !/^sha256:[A-Za-z0-9_-]{43}$/.test(client_secret_hash)) {
        p(`${path}.client_secret_hash`, 'must be "sha256:<base64url>" (see `gatehouse clients add`)')
      }
      const needsSecret = method === 'client_secret_basic' || method === 'client_secret_post'
      if (needsSecret && !client_secret && !client_secret_hash) p(path, `needs client_secret or client_secret_hash for ${method}`)
      if (!needsSecret && (client_secret || client_secret_hash)) p(path, `must not have a secret with ${method}`)
      const grant_types = strList(c.grant_types, `${path}.grant_types`) as GrantType[]
      for (const g of grant_types) if (!(GRANT_TYPES as readonly string[]).includes(g)) p(`${path}.grant_types`, `has unsupported grant ${JSON.stringify(g)}`)
      if (method === 'none' && grant_types.some((g) => g === 'client_credentials' || g === 'password')) {
        p(`${path}.grant_types`, `a public client (none) may only use authorization_code and refresh_token, and the device grant ${DEVICE_CODE_GRANT}`)
      }
      const scope = typeof c.scope === 'string' ? c.scope : ''
      if (c.scope !== undefined && typeof c.scope !== 'string') p(`${path}.scope`, 'must be a space-separated string')
      const audience = str(c.audience, `${path}.audience`, false) ?? config.resources[0]?.audience ?? ''
      const clientResources = strList(c.resources, `${path}.resources`)
      for (const r of clientResources) {
        const problem = resourceUriProblem(r)
        if (problem !== null) p(`${path}.resources`, `of client ${JSON.stringify(client_id ?? '')}: ${JSON.stringify(r.slice(0, 256))} ${problem}`)
        // Only checked against the resources declared alongside, when there are any: a stored
        // record is read back alone, and the database's resources may not be in the file.
        else if (config.resources.length > 0 && !config.resources.some((known) => known.audience === r)) {
          p(`${path}.resources`, `of client ${JSON.stringify(client_id ?? '')}: ${JSON.stringify(r)} is not the audience of a configured resource`)
        }
      }
      const redirect_uris = strList(c.redirect_uris, `${path}.redirect_uris`)
      const post_logout_redirect_uris = strList(c.post_logout_redirect_uris, `${path}.post_logout_redirect_uris`)
      for (const field of ['redirect_uris', 'post_logout_redirect_uris'] as const) {
        for (const u of field === 'redirect_uris' ? redirect_uris : post_logout_redirect_uris) {
          const problem = redirectUriProblem(u)
          if (problem !== null) p(`${path}.${field}`, `of client ${JSON.stringify(client_id ?? '')}: ${JSON.stringify(u)} ${problem}`)
        }
      }
      if (grant_types.includes('authorization_code') && redirect_uris.length === 0) p(`${path}.redirect_uris`, 'are required for authorization_code')
      let jwks: ClientConfig['jwks'] = null
      if (c.jwks !== undefined && c.jwks !== null) {
        if (!isObj(c.jwks) || !Array.isArray(c.jwks.keys)) p(`${path}.jwks`, 'must be a JWK Set ({"keys": [...]})')
        else jwks = c.jwks as ClientConfig['jwks']
      }
      if (method === 'private_key_jwt' && !jwks) p(`${path}.jwks`, 'is required for private_key_jwt')
      const backchannel_logout_uri = str(c.backchannel_logout_uri, `${path}.backchannel_logout_uri`, false)
      const bclProblem = backchannel_logout_uri === undefined ? null : backchannelLogoutUriProblem(backchannel_logout_uri)
      if (bclProblem !== null) p(`${path}.backchannel_logout_uri`, bclProblem)
      const bclSession = c.backchannel_logout_session_required
      if (bclSession !== undefined && bclSession !== null && typeof bclSession !== 'boolean') p(`${path}.backchannel_logout_session_required`, 'must be true or false')
      for (const flag of ['introspection', 'release_roles', 'require_pushed_authorization_requests', 'dpop_bound_access_tokens', 'require_mfa'] as const) {
        if (c[flag] !== undefined && typeof c[flag] !== 'boolean') p(`${path}.${flag}`, 'must be true or false')
      }
      // A second factor is asked for only in the browser's sign-in (the code flow): a grant that
      // signs the user in elsewhere (a password at /token, a sign-in for the device page) cannot meet it.
      if (c.require_mfa === true) {
        for (const g of ['password', DEVICE_CODE_GRANT] as const) {
          if (grant_types.includes(g)) p(`${path}.require_mfa`, `cannot be met by the ${g} grant: a second factor is asked only in the code flow`)
        }
      }
      if (c.introspection === true && method === 'none') p(`${path}.introspection`, 'needs an authenticated client (RFC 7662 §2.1), not a public one')
      if (method === 'none' && grant_types.includes(TOKEN_EXCHANGE_GRANT)) p(`${path}.grant_types`, 'a public client (none) may not use token exchange')
      const token_exchange = tokenExchangeMetadata(c.token_exchange, `${path}.token_exchange`, p)
      if (client_id) {
        const rec: ClientConfig = {
          client_id,
          token_endpoint_auth_method: method,
          grant_types,
          scope,
          audience,
          redirect_uris,
          post_logout_redirect_uris,
          jwks,
        }
        if (typeof c.client_name === 'string') rec.client_name = c.client_name
        if (clientResources.length > 0) rec.resources = [...new Set(clientResources)]
        if (client_secret) rec.client_secret = client_secret
        if (client_secret_hash) rec.client_secret_hash = client_secret_hash
        if (backchannel_logout_uri !== undefined && bclProblem === null) rec.backchannel_logout_uri = backchannel_logout_uri
        if (bclSession === true) rec.backchannel_logout_session_required = true
        if (typeof c.introspection === 'boolean') rec.introspection = c.introspection
        if (typeof c.release_roles === 'boolean') rec.release_roles = c.release_roles
        if (c.require_pushed_authorization_requests === true) rec.require_pushed_authorization_requests = true
        if (c.dpop_bound_access_tokens === true) rec.dpop_bound_access_tokens = true
        if (c.require_mfa === true) rec.require_mfa = true
        if (token_exchange !== undefined) rec.token_exchange = token_exchange
        config.clients.push(rec)
      }
    })

  const users = doc.users ?? []
  const names = new Set<string>()
  const emails = new Set<string>()
  if (!Array.isArray(users)) p('users', 'must be an array')
  else
    users.forEach((u, i) => {
      const path = `users[${i}]`
      if (!isObj(u)) return p(path, 'must be an object')
      const username = str(u.username, `${path}.username`, true)
      if (username) {
        const key = username.toLowerCase()
        if (names.has(key)) p(`${path}.username`, `duplicates ${username} (usernames are case-insensitive)`)
        names.add(key)
      }
      const email = str(u.email, `${path}.email`, false)
      if (email !== undefined) {
        const problem = emailProblem(email)
        if (problem !== null) p(`${path}.email`, `is not acceptable: ${problem}`)
        const key = email.toLowerCase()
        if (emails.has(key)) p(`${path}.email`, `duplicates ${email} (emails are case-insensitive)`)
        emails.add(key)
      }
      const password = str(u.password, `${path}.password`, false)
      const password_hash = str(u.password_hash, `${path}.password_hash`, false)
      if (!password && !password_hash) p(path, 'needs password or password_hash')
      // The hash is never echoed: only why it is refused.
      const hashProblem = password_hash ? passwordHashProblem(password_hash) : null
      if (hashProblem !== null) p(`${path}.password_hash`, `is not acceptable: ${hashProblem}`)
      const roles = strList(u.roles, `${path}.roles`)
      const claims = u.claims === undefined ? {} : u.claims
      if (!isObj(claims)) p(`${path}.claims`, 'must be an object')
      if (username) {
        const rec: UserConfig = { username, roles, claims: isObj(claims) ? claims : {}, disabled: u.disabled === true }
        if (email !== undefined) rec.email = email
        if (password) rec.password = password
        if (password_hash) rec.password_hash = password_hash
        config.users.push(rec)
      }
    })
  return { config, problems }
}

export async function readAuthFileConfig(path: string): Promise<{ config: AuthFileConfig; problems: string[] }> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    return { config: { resources: [], clients: [], users: [] }, problems: [`AUTH_CONFIG_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`] }
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return { config: { resources: [], clients: [], users: [] }, problems: [`AUTH_CONFIG_FILE: ${path} is not valid JSON (${(err as Error).message})`] }
  }
  return parseAuthFileConfig(doc, `AUTH_CONFIG_FILE ${path}`)
}
