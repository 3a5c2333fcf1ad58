import type { FastifyRequest } from 'fastify'
import { InvalidClient, InvalidRequest } from '@gatehouse/service-kit'
import { checkClientSecret, type Client, type ClientDirectory } from './clients.js'
import type { Params } from '../http/form.js'
import type { TokenEndpointAuthMethod } from './config-file.js'

/**
 * Client authentication at /token, /revoke and /introspect (RFC 6749 §2.3,
 * OIDC Core §9). Exactly one method per request.
 */
export interface AuthenticatedClient {
  client: Client
  method: TokenEndpointAuthMethod
}

/** Verifies a `private_key_jwt` assertion (RFC 7523); provided by the OIDC layer. */
export type AssertionVerifier = (client: Client, assertion: string) => Promise<boolean>

export interface ClientAuthDeps {
  clients: ClientDirectory
  verifyAssertion?: AssertionVerifier
  onFailure?: (clientId: string | undefined, reason: string) => void
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const SECRET_METHODS: ReadonlySet<TokenEndpointAuthMethod> = new Set(['client_secret_basic', 'client_secret_post'])

/** Thrown with `basic: true` so the serializer adds `WWW-Authenticate: Basic` (RFC 6749 §5.2). */
export class InvalidBasicClient extends InvalidClient {}

function parseBasic(header: string): { id: string; secret: string } | null {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header.trim())
  if (!m) return null
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8')
  const i = decoded.indexOf(':')
  if (i < 0) return null
  try {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    return {
      id: decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' ')),
      secret: decodeURIComponent(decoded.slice(i + 1).replace(/\+/g, ' ')),
    }
  } catch {
    return null
  }
}

export async function authenticateClient(request: FastifyRequest, params: Params, deps: ClientAuthDeps): Promise<AuthenticatedClient> {
  const header = request.headers.authorization
  const fail = (clientId: string | undefined, reason: string, basic = false): never => {
    deps.onFailure?.(clientId, reason)
    throw basic ? new InvalidBasicClient('client authentication failed', { detail: reason }) : new InvalidClient('client authentication failed', { detail: reason })
  }

  const hasAssertion = params.client_assertion !== undefined || params.client_assertion_type !== undefined
  const methods = [header !== undefined, params.client_secret !== undefined, hasAssertion].filter(Boolean).length
  if (methods > 1) throw new InvalidRequest('use exactly one client authentication method')

  if (header !== undefined) {
    const basic = parseBasic(header)
    if (!basic) return fail(undefined, 'malformed basic credentials', true)
    if (params.client_id !== undefined && params.client_id !== basic.id) throw new InvalidRequest('client_id does not match the credentials')
    const client = await deps.clients.get(basic.id)
    // A client registered for either secret method may present its secret either way.
    const ok = checkClientSecret(client, basic.secret)
    if (!client || !ok || !SECRET_METHODS.has(client.authMethod)) return fail(basic.id, client ? 'wrong secret or method' : 'unknown client', true)
    return { client, method: 'client_secret_basic' }
  }

  if (params.client_secret !== undefined) {
    const id = params.client_id
    if (id === undefined) throw new InvalidRequest('missing parameter client_id')
    const client = await deps.clients.get(id)
    const ok = checkClientSecret(client, params.client_secret)
    if (!client || !ok || !SECRET_METHODS.has(client.authMethod)) return fail(id, client ? 'wrong secret or method' : 'unknown client')
    return { client, method: 'client_secret_post' }
  }

  if (hasAssertion) {
    if (params.client_assertion_type !== ASSERTION_TYPE) throw new InvalidRequest('client_assertion_type must be ' + ASSERTION_TYPE)
    const assertion = params.client_assertion
    if (assertion === undefined) throw new InvalidRequest('missing parameter client_assertion')
    const id = params.client_id ?? unverifiedIssuer(assertion)
    if (id === undefined) return fail(undefined, 'assertion names no client')
    const client = await deps.clients.get(id)
    if (!client || client.authMethod !== 'private_key_jwt' || !deps.verifyAssertion) return fail(id, 'client not registered for private_key_jwt')
    if (!(await deps.verifyAssertion(client, assertion))) return fail(id, 'assertion rejected')
    return { client, method: 'private_key_jwt' }
  }

  const id = params.client_id
  if (id === undefined) return fail(undefined, 'no client authentication')
  const client = await deps.clients.get(id)
  if (!client || client.authMethod !== 'none') return fail(id, client ? 'client must authenticate' : 'unknown client')
  return { client, method: 'none' }
}

/** The `iss` of an assertion, unverified (used only to look the client up). */
function unverifiedIssuer(jwt: string): string | undefined {
  const part = jwt.split('.')[1]
  if (!part || part.length > 8192) return undefined
  try {
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    const iss = (claims as { iss?: unknown }).iss
    return typeof iss === 'string' ? iss : undefined
  } catch {
    return undefined
  }
}
