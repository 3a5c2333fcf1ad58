/**
 * Service to service across both services: a client_credentials token from the real auth app
 * (listening on 127.0.0.1) is accepted by the resource service's /internal route; a user token
 * is refused there, even one that carries the internal:read scope. The resource service is
 * built in-process from its own buildApp/loadConfig and finds the auth service's keys through
 * discovery, like in production.
 */
import t from 'tap'
import * as oidc from 'openid-client'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '../../../resource/src/index.js'
import { basic, form } from '../helpers.js'
import { SERVICE_CLIENT_ID, startOidcApp } from './harness.js'

t.test('GET /internal: service tokens in, user tokens out', async (t) => {
  const auth = await startOidcApp({
    listen: true,
    // A first-party client that may ask for internal:read on behalf of a user: still not a service.
    clients: [{ client_id: 'ops-cli', client_secret: 'ops-cli-secret', grant_types: ['password'], scope: 'internal:read', audience: 'api://resource' }],
  })
  t.teardown(auth.close)
  const resource = buildResource(loadResourceConfig({ ISSUER: auth.issuer, AUDIENCE: 'api://resource', LOG_LEVEL: 'silent' }), { logStream: false })
  t.teardown(() => resource.close())
  await resource.ready()
  const internal = async (token: string) => await resource.inject({ method: 'GET', url: '/internal', headers: { authorization: `Bearer ${token}` } })

  const jwtClient = await oidc.discovery(new URL(auth.issuer), SERVICE_CLIENT_ID, undefined, oidc.PrivateKeyJwt(auth.serviceKey.privateKey), { execute: [oidc.allowInsecureRequests] })
  const service = await oidc.clientCredentialsGrant(jwtClient, { scope: 'internal:read' })
  const ok = await internal(service.access_token)
  t.equal(ok.statusCode, 200, 'private_key_jwt service token accepted')
  t.equal(ok.json().service, SERVICE_CLIENT_ID)

  const secretClient = await oidc.discovery(new URL(auth.issuer), 'reporting-service', undefined, oidc.ClientSecretBasic('reporting-secret'), { execute: [oidc.allowInsecureRequests] })
  t.equal((await internal((await oidc.clientCredentialsGrant(secretClient, { scope: 'internal:read' })).access_token)).statusCode, 200, 'client_secret_basic service token accepted')
  const narrow = await oidc.clientCredentialsGrant(secretClient, { scope: 'documents:read' })
  t.equal((await internal(narrow.access_token)).statusCode, 403, 'a service token without internal:read')

  const headers = { 'content-type': 'application/x-www-form-urlencoded' }
  const user = await auth.app.inject({ method: 'POST', url: '/token', headers: { ...headers, authorization: basic('ops-cli', 'ops-cli-secret') }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }) })
  t.equal(user.json().scope, 'internal:read', 'the user token does carry the scope')
  const refused = await internal(user.json().access_token)
  t.equal(refused.statusCode, 403, 'a user token is refused even with internal:read')
  const cli = await auth.app.inject({ method: 'POST', url: '/token', headers: { ...headers, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }) })
  t.equal((await internal(cli.json().access_token)).statusCode, 403, "an ordinary user token (admin role, no internal:read)")
  t.equal((await resource.inject({ method: 'GET', url: '/internal' })).statusCode, 401, 'no token')
})
