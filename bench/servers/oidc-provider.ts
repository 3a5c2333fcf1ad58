import { createServer } from 'node:http'
import Provider from 'oidc-provider'
import { exportJWK, generateKeyPair } from 'jose'

/**
 * The comparison for target 2: node-oidc-provider's token endpoint doing the same work as
 * Gatehouse's client_credentials grant, as closely as its configuration allows: a confidential
 * client authenticating with client_secret_basic, `client_credentials` enabled, a resource server
 * (RFC 8707 resource indicators, defaulting to the one audience) whose access tokens are RS256
 * JWTs (RFC 9068 `at+jwt`) signed with an RSA-2048 key, the same scope and a 900 s lifetime. Its
 * default (in-memory) adapter; it writes no request log of its own.
 *
 * Env: PORT, ISSUER, CLIENT_ID, CLIENT_SECRET, AUDIENCE, SCOPE.
 * Answers `{type: 'ready', port}` on its IPC channel once it listens.
 */

const port = Number(process.env.PORT)
const issuer = process.env.ISSUER ?? `http://127.0.0.1:${port}`
const audience = process.env.AUDIENCE ?? 'api://resource'
const scope = process.env.SCOPE ?? 'documents:read'
const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'bench' }

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID ?? 'bench-service',
      client_secret: process.env.CLIENT_SECRET ?? 'bench-service-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope,
    },
  ],
  jwks: { keys: [jwk] },
  scopes: [scope],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope, audience, accessTokenTTL: 900, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
    },
  },
})
provider.proxy = false

const server = createServer(provider.callback())
server.listen(port, '127.0.0.1', () => process.send?.({ type: 'ready', port }))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
