import { readFile } from 'node:fs/promises'
import type { Client } from '../directory/clients.js'
import { AUTH_METHODS, GRANT_TYPES, type GrantType, type TokenEndpointAuthMethod } from '../directory/config-file.js'
import type { CliContext } from './context.js'
import { CliError, list, str, UsageError, type CommandSpec, type GroupSpec } from './framework.js'
import { PAGE_OPTIONS, paged } from './users.js'

/** A client in its config-file form: never its secret or the secret's hash. */
export function clientJson(c: Client): Record<string, unknown> {
  return {
    client_id: c.id,
    client_name: c.name ?? null,
    token_endpoint_auth_method: c.authMethod,
    grant_types: [...c.grantTypes],
    scope: c.scopes.join(' '),
    audience: c.audience,
    resources: c.resources,
    redirect_uris: c.redirectUris,
    post_logout_redirect_uris: c.postLogoutRedirectUris,
    has_secret: c.secretHash !== undefined,
    jwks_keys: c.jwks?.keys.length ?? 0,
    backchannel_logout_uri: c.backchannelLogoutUri ?? null,
    backchannel_logout_session_required: c.backchannelLogoutSessionRequired === true,
    introspection: c.introspection,
    release_roles: c.releaseRoles,
    require_pushed_authorization_requests: c.requirePushedAuthorizationRequests,
    dpop_bound_access_tokens: c.dpopBoundAccessTokens,
    require_mfa: c.requireMfa,
    token_exchange: c.tokenExchange.audiences.length > 0 ? { audiences: [...c.tokenExchange.audiences] } : null,
  }
}

function clientLine(c: Client): string {
  return `${c.id}  ${c.authMethod}  grants=${[...c.grantTypes].join(',')}  scope="${c.scopes.join(' ')}"${c.name ? `  (${c.name})` : ''}`
}

/** The secret goes to stdout once, alone on its line after the summary (or in the JSON), never to the log. */
function secretNote(secret: string): string {
  return `client_secret (shown once; store it now):\n${secret}`
}

export function clientsGroup(ctx: CliContext): GroupSpec {
  const commands: CommandSpec[] = [
    {
      name: 'add',
      summary: 'register a client; a secret client gets a generated secret, printed once',
      args: [{ name: 'client_id', description: 'the client identifier' }],
      options: {
        name: { type: 'string', value: 'text', description: 'a human-readable name' },
        'auth-method': { type: 'string', value: 'method', description: `token endpoint auth method: ${AUTH_METHODS.join(', ')} (default client_secret_basic)` },
        'grant-type': { type: 'string', multiple: true, value: 'grant', description: `an allowed grant (repeat): ${GRANT_TYPES.join(', ')}` },
        scope: { type: 'string', value: 'scopes', description: 'space-separated scopes the client may request' },
        audience: { type: 'string', value: 'aud', description: 'the audience of its access tokens (default: the first resource: of the database with DATABASE_URL, else of the config file)' },
        resource: { type: 'string', multiple: true, value: 'uri', description: "a further audience it may ask for with the resource parameter (repeat; RFC 8707), a configured resource's; --audience stays the default" },
        'redirect-uri': { type: 'string', multiple: true, value: 'uri', description: 'an exact redirect URI (repeat; required for authorization_code)' },
        'post-logout-redirect-uri': { type: 'string', multiple: true, value: 'uri', description: 'a post-logout redirect URI (repeat)' },
        'jwks-file': { type: 'string', value: 'file', description: "the client's public JWK Set, for private_key_jwt" },
        'backchannel-logout-uri': { type: 'string', value: 'uri', description: 'where logout tokens are POSTed when a session ends (OIDC Back-Channel Logout; https, or http to loopback)' },
        'backchannel-logout-session-required': { type: 'boolean', description: 'the client needs sid in logout tokens (always sent)' },
        introspection: { type: 'boolean', description: 'may call /introspect (for resource servers; default: no)' },
        'release-roles': { type: 'string', value: 'true|false', description: "put users' roles in its tokens (default: true only with the password grant)" },
        'require-par': { type: 'boolean', description: 'authorization requests only through /par, pushed (RFC 9126 require_pushed_authorization_requests; default: no)' },
        'dpop-bound-access-tokens': { type: 'boolean', description: 'every token request must carry a DPoP proof (RFC 9449 §5.2; default: no)' },
        'require-mfa': { type: 'boolean', description: 'every sign-in to it needs a second factor, also from an existing session (acr multi-factor; default: no)' },
        'exchange-audience': { type: 'string', multiple: true, value: 'aud', description: 'an audience it may exchange users\' tokens for (repeat; with the grant urn:ietf:params:oauth:grant-type:token-exchange, RFC 8693)' },
      },
      examples: [
        'gatehouse clients add reporting --grant-type client_credentials --scope "internal:read"',
        'gatehouse clients add web2 --grant-type authorization_code --grant-type refresh_token --scope "openid profile" --redirect-uri https://app.example.com/cb',
        'gatehouse clients add dashboard --grant-type authorization_code --grant-type refresh_token --scope "openid documents:read reports:read" --resource api://reports --redirect-uri https://dash.example.com/cb',
        'gatehouse clients add spa2 --auth-method none --grant-type authorization_code --redirect-uri https://spa.example.com/cb --json',
        'gatehouse clients add web3 --grant-type authorization_code --scope openid --redirect-uri https://app.example.com/cb --backchannel-logout-uri https://app.example.com/backchannel-logout',
        'gatehouse clients add tv-app --auth-method none --grant-type urn:ietf:params:oauth:grant-type:device_code --grant-type refresh_token --scope "openid profile"',
        'gatehouse clients add gateway --grant-type urn:ietf:params:oauth:grant-type:token-exchange --exchange-audience api://reports',
      ],
      async run(inv) {
        const method = (str(inv.values, 'auth-method') ?? 'client_secret_basic') as TokenEndpointAuthMethod
        if (!AUTH_METHODS.includes(method)) throw new UsageError(`--auth-method must be one of ${AUTH_METHODS.join(', ')}`)
        const grants = list(inv.values, 'grant-type')
        if (grants.length === 0) throw new UsageError('give at least one --grant-type')
        for (const g of grants) if (!(GRANT_TYPES as readonly string[]).includes(g)) throw new UsageError(`--grant-type must be one of ${GRANT_TYPES.join(', ')}`)
        let jwks: { keys: Record<string, unknown>[] } | null = null
        const jwksFile = str(inv.values, 'jwks-file')
        if (jwksFile !== undefined) {
          try {
            jwks = JSON.parse(await readFile(jwksFile, 'utf8')) as { keys: Record<string, unknown>[] }
          } catch (err) {
            throw new CliError(`cannot read a JWK Set from ${jwksFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
          }
          // Only public members are kept: a JWK Set with private parts was given by mistake.
          if (Array.isArray(jwks?.keys) && jwks.keys.some((k) => typeof k === 'object' && k !== null && 'd' in k)) throw new UsageError(`${jwksFile} holds private keys: give the client's public JWK Set`)
        }
        const releaseRoles = str(inv.values, 'release-roles')
        if (releaseRoles !== undefined && releaseRoles !== 'true' && releaseRoles !== 'false') throw new UsageError('--release-roles must be true or false')
        const admin = await ctx.admin()
        const name = str(inv.values, 'name')
        const audience = str(inv.values, 'audience')
        const resources = list(inv.values, 'resource')
        const backchannelUri = str(inv.values, 'backchannel-logout-uri')
        const exchangeAudiences = list(inv.values, 'exchange-audience')
        const { client, secret } = await admin.addClient({
          client_id: inv.args[0]!,
          ...(name !== undefined ? { client_name: name } : {}),
          token_endpoint_auth_method: method,
          grant_types: grants as GrantType[],
          scope: str(inv.values, 'scope') ?? '',
          ...(audience !== undefined ? { audience } : {}),
          ...(resources.length > 0 ? { resources } : {}),
          redirect_uris: list(inv.values, 'redirect-uri'),
          post_logout_redirect_uris: list(inv.values, 'post-logout-redirect-uri'),
          jwks,
          ...(backchannelUri !== undefined ? { backchannel_logout_uri: backchannelUri } : {}),
          ...(inv.values['backchannel-logout-session-required'] === true ? { backchannel_logout_session_required: true } : {}),
          ...(inv.values.introspection === true ? { introspection: true } : {}),
          ...(releaseRoles !== undefined ? { release_roles: releaseRoles === 'true' } : {}),
          ...(inv.values['require-par'] === true ? { require_pushed_authorization_requests: true } : {}),
          ...(inv.values['dpop-bound-access-tokens'] === true ? { dpop_bound_access_tokens: true } : {}),
          ...(inv.values['require-mfa'] === true ? { require_mfa: true } : {}),
          ...(exchangeAudiences.length > 0 ? { token_exchange: { audiences: exchangeAudiences } } : {}),
        })
        inv.print(`added ${clientLine(client)}${secret ? `\n${secretNote(secret)}` : ''}`, { client: clientJson(client), ...(secret ? { client_secret: secret } : {}) })
      },
    },
    {
      name: 'list',
      summary: 'list clients',
      options: { ...PAGE_OPTIONS, search: { type: 'string', value: 'text', description: 'only clients whose client_id or name contains text (case-insensitive)' } },
      examples: ['gatehouse clients list', 'gatehouse clients list --json', 'gatehouse clients list --search report'],
      async run(inv) {
        const admin = await ctx.admin()
        await paged(inv, async (p) => {
          const page = await admin.listClients(p)
          return { items: page.clients, cursor: page.cursor }
        }, clientLine, clientJson, 'clients')
      },
    },
    {
      name: 'show',
      summary: 'show a client',
      args: [{ name: 'client_id', description: 'the client identifier' }],
      examples: ['gatehouse clients show cli --json'],
      async run(inv) {
        const admin = await ctx.admin()
        const c = await admin.findClient(inv.args[0]!)
        const extra = [
          c.redirectUris.length ? `redirect_uris: ${c.redirectUris.join(' ')}` : '',
          `audience: ${c.audience}`,
          c.resources.length ? `resources: ${c.resources.join(' ')}` : '',
          c.backchannelLogoutUri ? `backchannel_logout_uri: ${c.backchannelLogoutUri}` : '',
        ].filter(Boolean).join('\n')
        inv.print(`${clientLine(c)}\n${extra}`, { client: clientJson(c) })
      },
    },
    {
      name: 'rotate-secret',
      summary: "replace a client's secret (the old one stops working at once); the new one is printed once",
      args: [{ name: 'client_id', description: 'the client identifier' }],
      destructive: true,
      examples: ['gatehouse clients rotate-secret reporting --yes --json'],
      async run(inv) {
        const admin = await ctx.admin()
        const id = inv.args[0]!
        await admin.findClient(id)
        await inv.confirm(`Replace the secret of ${id}? The current secret stops working at once.`)
        const { client, secret } = await admin.rotateClientSecret(id)
        inv.print(`new secret for ${client.id}\n${secretNote(secret)}`, { client: clientJson(client), client_secret: secret })
      },
    },
    {
      name: 'delete',
      summary: 'delete a client (its refresh tokens stop working; access tokens live until they expire)',
      args: [{ name: 'client_id', description: 'the client identifier' }],
      destructive: true,
      examples: ['gatehouse clients delete reporting --yes'],
      async run(inv) {
        const admin = await ctx.admin()
        const id = inv.args[0]!
        await admin.findClient(id)
        await inv.confirm(`Delete client ${id}?`)
        const client = await admin.deleteClient(id)
        inv.print(`deleted ${client.id}`, { client: clientJson(client) })
      },
    },
  ]
  return { name: 'clients', summary: 'clients: add, list, show, rotate-secret, delete', commands }
}
