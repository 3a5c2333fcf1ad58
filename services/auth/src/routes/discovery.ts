import type { FastifyInstance } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'
import { GRANTS } from '../grants/index.js'
import { ASSERTION_ALGS } from '../directory/assertion.js'
import { SCOPE_CLAIMS } from './userinfo.js'
import { DPOP_ALGORITHMS } from '@gatehouse/verifier'
import { ACR_VALUES } from '../mfa/assurance.js'

/** Extra metadata contributed by other modules (the OIDC layer adds its endpoints). */
export type MetadataExtension = (issuer: string) => Record<string, unknown>

/** OIDC Discovery 1.0 §3 and RFC 8414 §2; every path the contract names. */
export function discoveryDocument(deps: AuthDeps, extensions: readonly MetadataExtension[] = []): Record<string, unknown> {
  const iss = deps.config.issuer
  const scopes = new Set<string>(['openid', ...Object.keys(SCOPE_CLAIMS)])
  for (const r of deps.resources.list()) for (const s of r.scopes) scopes.add(s)
  const doc: Record<string, unknown> = {
    issuer: iss,
    authorization_endpoint: `${iss}/authorize`,
    token_endpoint: `${iss}/token`,
    jwks_uri: `${iss}/jwks.json`,
    userinfo_endpoint: `${iss}/userinfo`,
    revocation_endpoint: `${iss}/revoke`,
    introspection_endpoint: `${iss}/introspect`,
    end_session_endpoint: `${iss}/logout`,
    scopes_supported: [...scopes],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: Object.keys(GRANTS),
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: ['RS256', 'PS256', 'ES256'],
    code_challenge_methods_supported: ['S256'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'at_hash', 'sid', 'amr', 'acr', ...new Set(Object.values(SCOPE_CLAIMS).flat())],
    request_parameter_supported: false,
    // OIDC Core §6.2 request objects by reference (fetched from the client) are not supported; the
    // request_uri of a pushed request (RFC 9126) is announced by the PAR endpoint below, as
    // node-oidc-provider does.
    request_uri_parameter_supported: false,
    claims_parameter_supported: false,
    prompt_values_supported: ['none', 'login'],
    // OIDC Discovery §3: the acr values a sign-in can reach, weakest first (mfa/assurance.ts).
    acr_values_supported: [...ACR_VALUES],
    // RFC 9126 §5: the PAR endpoint, and whether every client must use it (REQUIRE_PAR).
    pushed_authorization_request_endpoint: `${iss}/par`,
    require_pushed_authorization_requests: deps.config.requirePar,
    // RFC 9207: the authorization response carries `iss`.
    authorization_response_iss_parameter_supported: true,
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    revocation_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
    // RFC 7662 §4: introspection is for clients that can authenticate.
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    introspection_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
    // OIDC Back-Channel Logout 1.0 §2.1: logout tokens are POSTed, and always carry `sid`.
    backchannel_logout_supported: true,
    backchannel_logout_session_supported: true,
    // RFC 9449 §5.1: the algorithms a DPoP proof may use at /token and /userinfo.
    dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
    // RFC 8628 §4: where a device starts the device authorization grant.
    device_authorization_endpoint: `${iss}/device_authorization`,
  }
  for (const ext of extensions) Object.assign(doc, ext(iss))
  return doc
}

export async function discoveryRoutes(app: FastifyInstance, { deps, extensions = [] }: { deps: AuthDeps; extensions?: readonly MetadataExtension[] }): Promise<void> {
  const handler = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    reply.header('cache-control', 'public, max-age=300')
    return discoveryDocument(deps, extensions)
  }
  app.get('/.well-known/openid-configuration', handler)
  app.get('/.well-known/oauth-authorization-server', handler)
}
