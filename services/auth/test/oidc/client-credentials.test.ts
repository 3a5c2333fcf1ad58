/**
 * Service to service (DESIGN §1 flow 6): client_credentials with client_secret_basic,
 * client_secret_post and private_key_jwt (RFC 7523), driven by openid-client; assertion checks
 * (jti replay, aud, iss/sub, lifetime, algorithms, keys) through /token, /revoke, /introspect.
 */
import t from 'tap'
import * as oidc from 'openid-client'
import { generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import { randomUUID } from 'node:crypto'
import { basic, form } from '../helpers.js'
import { SERVICE_CLIENT_ID, startOidcApp, type OidcApp, rejectsWith } from './harness.js'

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

async function rp(h: OidcApp, clientId: string, auth: oidc.ClientAuth): Promise<oidc.Configuration> {
  return await oidc.discovery(new URL(h.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] })
}

t.test('client_credentials with each client authentication method (openid-client)', async (t) => {
  const h = await startOidcApp({ listen: true })
  t.teardown(h.close)
  for (const [name, clientId, auth] of [
    ['client_secret_basic', 'reporting-service', oidc.ClientSecretBasic('reporting-secret')],
    ['client_secret_post', 'reporting-service', oidc.ClientSecretPost('reporting-secret')],
    ['private_key_jwt', SERVICE_CLIENT_ID, oidc.PrivateKeyJwt(h.serviceKey.privateKey)],
  ] as const) {
    const config = await rp(h, clientId, auth)
    const res = await oidc.clientCredentialsGrant(config, { scope: 'internal:read' })
    t.equal(res.scope, 'internal:read', name)
    t.notOk(res.refresh_token, `${name}: no refresh token (RFC 6749 §4.4.3)`)
    t.notOk(res.id_token, `${name}: no ID token`)
    const c = claimsOf(res.access_token)
    t.equal(c.sub, clientId, `${name}: sub is the client`)
    t.equal(c.client_id, clientId)
    t.equal(c.aud, 'api://resource')
    t.notOk('sid' in c, `${name}: no sid`)
    t.notOk('roles' in c, `${name}: no roles`)
    t.notOk('auth_time' in c, `${name}: no auth_time`)
    t.match(await oidc.tokenIntrospection(config, res.access_token), { active: true, sub: clientId, client_id: clientId, scope: 'internal:read' })
    await oidc.tokenRevocation(config, res.access_token) // accepted; a service token has no family to revoke
  }
  const all = await oidc.clientCredentialsGrant(await rp(h, SERVICE_CLIENT_ID, oidc.PrivateKeyJwt(h.serviceKey.privateKey)))
  t.equal(all.scope, 'internal:read documents:read', 'no scope asked: the client default')
  await rejectsWith(t, oidc.clientCredentialsGrant(await rp(h, 'reporting-service', oidc.ClientSecretBasic('reporting-secret')), { scope: 'documents:write' }), { error: 'invalid_scope' })
  await rejectsWith(t, oidc.clientCredentialsGrant(await rp(h, 'web', oidc.ClientSecretBasic('web-secret'))), { error: 'unauthorized_client' }, 'a browser client may not')
  await rejectsWith(t, oidc.clientCredentialsGrant(await rp(h, 'reporting-service', oidc.ClientSecretBasic('wrong'))), { status: 401 }, 'a wrong secret: 401 with a Basic challenge')
  const events = h.logs.events('token.issued').filter((e) => e.grant_type === 'client_credentials')
  t.same(events.map((e) => e.auth_method), ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'private_key_jwt'])
})

t.test('private_key_jwt: every rule of RFC 7523 §3 is enforced', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const now = () => Math.floor(h.clock.now() / 1000)
  const sign = async (
    claims: Record<string, unknown> = {},
    opts: { key?: CryptoKey | Uint8Array; alg?: string; header?: Record<string, unknown> } = {},
  ) => {
    const payload = { iss: SERVICE_CLIENT_ID, sub: SERVICE_CLIENT_ID, aud: h.issuer, jti: randomUUID(), iat: now(), exp: now() + 60, ...claims }
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete (payload as Record<string, unknown>)[k]
    return await new SignJWT(payload).setProtectedHeader({ alg: opts.alg ?? 'ES256', kid: 'svc-key-1', ...opts.header }).sign(opts.key ?? h.serviceKey.privateKey)
  }
  const post = async (path: string, params: Record<string, string>) =>
    await h.app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form(params) })
  const grant = async (assertion: string, extra: Record<string, string> = {}) =>
    await post('/token', { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion, ...extra })

  const good = await sign()
  t.equal((await grant(good)).statusCode, 200, 'a valid assertion')
  const replay = await grant(good)
  t.equal(replay.statusCode, 401, 'the same jti again')
  t.same(replay.json(), { error: 'invalid_client', error_description: 'client authentication failed' })
  t.equal((await grant(await sign({ aud: [h.issuer] }))).statusCode, 200, 'aud = [the issuer]')
  t.equal((await grant(await sign(), { client_id: SERVICE_CLIENT_ID })).statusCode, 200, 'with a matching client_id')

  const { privateKey: strangerKey } = await generateKeyPair('ES256')
  const rejected: Record<string, Promise<string>> = {
    'wrong audience': sign({ aud: 'https://other.example' }),
    'another endpoint as audience': sign({ aud: `${h.issuer}/userinfo` }),
    // RFC 7523bis: the issuer identifier is the only audience accepted.
    'the token endpoint URL as audience': sign({ aud: `${h.issuer}/token` }),
    'the token endpoint beside the issuer': sign({ aud: [`${h.issuer}/token`, h.issuer] }),
    'another audience beside the issuer': sign({ aud: ['https://other.example', h.issuer] }),
    'the issuer with a trailing slash': sign({ aud: `${h.issuer}/` }),
    'no aud': sign({ aud: undefined }),
    'no exp': sign({ exp: undefined }),
    'expired': sign({ iat: now() - 600, exp: now() - 300 }),
    'exp too far ahead': sign({ exp: now() + 3600 }),
    'no jti': sign({ jti: undefined }),
    'iss is not the client': sign({ iss: 'reporting-service' }),
    'sub is not the client': sign({ sub: 'someone' }),
    'signed by another key': sign({}, { key: strangerKey }),
    'HMAC': sign({}, { alg: 'HS256', key: new TextEncoder().encode('x'.repeat(32)) }),
    'embedded jwk header': sign({}, { header: { jwk: h.serviceKey.publicJwk } }),
    'jku header': sign({}, { header: { jku: 'https://evil.example/jwks' } }),
    'not before in the future': sign({ nbf: now() + 120 }),
  }
  for (const [name, assertion] of Object.entries(rejected)) {
    const res = await grant(await assertion)
    t.equal(res.statusCode, 401, name)
    t.equal(res.json().error, 'invalid_client', name)
  }
  const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: SERVICE_CLIENT_ID, sub: SERVICE_CLIENT_ID, aud: h.issuer, jti: 'x', exp: now() + 60 })).toString('base64url')}.`
  t.equal((await grant(unsigned)).statusCode, 401, 'alg none')
  t.equal((await grant('garbage')).statusCode, 401, 'not a JWT')
  t.equal((await grant('a'.repeat(9000))).statusCode, 401, 'oversized')
  t.equal((await grant(await sign(), { client_id: 'reporting-service' })).statusCode, 401, 'client_id of another client')
  const wrongType = await post('/token', { grant_type: 'client_credentials', client_assertion_type: 'urn:other', client_assertion: await sign() })
  t.equal(wrongType.json().error, 'invalid_request')
  const twoMethods = await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('reporting-service', 'reporting-secret') }, payload: form({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await sign() }) })
  t.equal(twoMethods.json().error, 'invalid_request', 'one authentication method per request')

  // The same verifier guards /revoke and /introspect; a replayed jti fails there too.
  const token = (await grant(await sign())).json().access_token as string
  const intro = await sign()
  const first = await post('/introspect', { token, client_assertion_type: ASSERTION_TYPE, client_assertion: intro })
  t.match(first.json(), { active: true, client_id: SERVICE_CLIENT_ID })
  t.equal((await post('/introspect', { token, client_assertion_type: ASSERTION_TYPE, client_assertion: intro })).statusCode, 401, 'replay at /introspect')
  t.equal((await post('/revoke', { token, client_assertion_type: ASSERTION_TYPE, client_assertion: await sign() })).statusCode, 200)
  t.equal((await post('/revoke', { token, client_assertion_type: ASSERTION_TYPE, client_assertion: await sign({ aud: 'https://other.example' }) })).statusCode, 401)
  t.ok(h.logs.events('client.auth_failed').length >= Object.keys(rejected).length)
  t.notOk(h.logs.text.includes(good), 'assertions are never logged')
})

t.test('a jti stays spent across replicas sharing Redis', async (t) => {
  const { startRedis } = await import('@gatehouse/test-harness')
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await startOidcApp({ env: { REDIS_URL: redis.url } })
  t.teardown(a.close)
  // A second replica with the same client keys: reuse a's config file through its deps.
  const { buildApp } = await import('../../src/app.js')
  const { createRuntime } = await import('../../src/runtime/bootstrap.js')
  const runtime = await createRuntime(a.config, { warn() {}, info() {} }, a.clock.now)
  const b = await buildApp(runtime.deps, { logStream: false })
  t.teardown(async () => {
    await b.close()
    await runtime.close()
  })
  const now = Math.floor(a.clock.now() / 1000)
  const assertion = await new SignJWT({ iss: SERVICE_CLIENT_ID, sub: SERVICE_CLIENT_ID, aud: a.issuer, jti: randomUUID(), exp: now + 60 })
    .setProtectedHeader({ alg: 'ES256', kid: 'svc-key-1' })
    .sign(a.serviceKey.privateKey)
  const params = form({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion })
  const headers = { 'content-type': 'application/x-www-form-urlencoded' }
  t.equal((await a.app.inject({ method: 'POST', url: '/token', headers, payload: params })).statusCode, 200, 'replica a accepts it')
  t.equal((await b.inject({ method: 'POST', url: '/token', headers, payload: params })).statusCode, 401, 'replica b refuses the replay')
})

t.test('a public client may not use client_credentials (config refuses it)', async (t) => {
  await t.rejects(startOidcApp({ clients: [{ client_id: 'pub', token_endpoint_auth_method: 'none', grant_types: ['client_credentials'], scope: 'documents:read' }] }), /a public client \(none\) may only use authorization_code and refresh_token/)
})
