/**
 * Token exchange (RFC 8693, DESIGN §10.4) at /token: what the exchanged token says, the delegation
 * chain, its lifetime, roles, the parameters' rules. The attacks (forged actors, foreign
 * audiences, refresh and ID tokens as subjects, revoked subjects) are in
 * test/security/attacks-exchange.test.ts.
 */
import t from 'tap'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { basic, form } from '../helpers.js'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { actClaim, exchangeScope, exchangeTarget } from '../../src/exchange/token-exchange.js'
import { parseAuthFileConfig } from '../../src/directory/config-file.js'
import { clientFromConfig } from '../../src/directory/clients.js'
import { storedClient } from '../../src/directory/stored-client.js'
import { redactSecrets } from '@gatehouse/service-kit'

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
const AT = 'urn:ietf:params:oauth:token-type:access_token'
const GATEWAY = basic('gateway', 'gateway-secret')

/** Extra clients: a gateway that may exchange for api://reports (and gets roles), one that may not get roles, a second hop. */
export const EXCHANGE_CLIENTS = [
  { client_id: 'gateway', client_secret: 'gateway-secret', grant_types: [GRANT, 'client_credentials'], scope: 'internal:read', audience: 'api://resource', release_roles: true, introspection: true, token_exchange: { audiences: ['api://reports'] } },
  { client_id: 'no-roles', client_secret: 'no-roles-secret', grant_types: [GRANT], audience: 'api://resource', token_exchange: { audiences: ['api://reports'] } },
  { client_id: 'second-hop', client_secret: 'second-hop-secret', grant_types: [GRANT], audience: 'api://reports', token_exchange: { audiences: ['api://reports'] } },
]

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

async function post(h: OidcApp, params: Record<string, string>, auth: string | null) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (auth !== null) headers.authorization = auth
  return await h.app.inject({ method: 'POST', url: '/token', headers, payload: form(params) })
}

async function userToken(h: OidcApp, scope = 'openid documents:read reports:read') {
  const res = await post(h, { grant_type: 'password', username: 'alice', password: 'alice-password', scope }, basic('cli', 'cli-secret'))
  if (res.statusCode !== 200) throw new Error(res.body)
  return res.json() as { access_token: string; refresh_token: string; id_token: string }
}

async function exchange(h: OidcApp, subject: string, extra: Record<string, string> = {}, auth: string | null = GATEWAY) {
  return await post(h, { grant_type: GRANT, subject_token: subject, subject_token_type: AT, audience: 'api://reports', ...extra }, auth)
}

t.test('the exchanged token keeps the user, names the caller as actor, and is for the target', async (t) => {
  const h = await startOidcApp({ clients: EXCHANGE_CLIENTS })
  t.teardown(h.close)
  const user = await userToken(h)
  const subject = claimsOf(user.access_token)
  const res = await exchange(h, user.access_token)
  t.equal(res.statusCode, 200, 'exchanged')
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'issued_token_type', 'scope', 'token_type'], 'RFC 8693 §2.2.1, no refresh token')
  t.equal(body.issued_token_type, AT)
  t.equal(body.token_type, 'Bearer')
  t.equal(body.scope, 'reports:read', 'default: the subject scopes of the target (openid, documents:read are not carried)')
  t.same(decodeProtectedHeader(body.access_token), { alg: 'RS256', typ: 'at+jwt', kid: h.deps.keys.current().active.kid })
  const { payload } = await jwtVerify(body.access_token, createLocalJWKSet(h.deps.keys.current().jwks), { issuer: h.issuer, audience: 'api://reports', typ: 'at+jwt', currentDate: new Date(h.clock.ms) })
  t.match(payload, { sub: subject.sub, sid: subject.sid, auth_time: subject.auth_time, client_id: 'gateway', aud: 'api://reports', scope: 'reports:read', roles: ['admin'], act: { sub: 'gateway' } })
  t.not(payload.jti, subject.jti)
  t.ok(payload.exp! <= (subject.exp as number), 'never outlives the subject')
  t.equal(body.expires_in, payload.exp! - payload.iat!)

  const introspected = await h.app.inject({ method: 'POST', url: '/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: GATEWAY }, payload: form({ token: body.access_token }) })
  t.match(introspected.json(), { active: true, sub: subject.sub, client_id: 'gateway', aud: 'api://reports', sid: subject.sid, act: { sub: 'gateway' } }, 'introspection shows act (RFC 8693 §4.1)')
  const [event] = h.logs.events('token.exchanged')
  t.match(event, { client_id: 'gateway', sub: subject.sub, audience: 'api://reports', family_id: subject.sid, subject_client_id: 'cli' })
  t.notOk(h.logs.text.includes(user.access_token) || h.logs.text.includes(body.access_token), 'no token in the logs')
  const audited = await h.deps.audit.search({ events: ['token.exchanged'], limit: 10 })
  t.match(audited.events, [{ event: 'token.exchanged', actorType: 'client', actorId: 'gateway', userId: subject.sub, clientId: 'gateway', details: { audience: 'api://reports' } }], 'in the audit trail')

  // resource, or both agreeing, name the same target
  t.equal((await exchange(h, user.access_token, { audience: '', resource: 'api://reports' })).statusCode, 200, 'resource alone')
  t.equal((await exchange(h, user.access_token, { resource: 'api://reports' })).statusCode, 200, 'resource and audience agreeing')
  t.equal((await exchange(h, user.access_token, { scope: 'reports:read' })).json().scope, 'reports:read', 'an explicit scope within both')
  t.equal((await exchange(h, user.access_token, { requested_token_type: AT })).statusCode, 200, 'requested_token_type access_token')
})

t.test('roles only for a client allowed them; a chain nests act; exp is capped by the subject', async (t) => {
  const h = await startOidcApp({ clients: EXCHANGE_CLIENTS })
  t.teardown(h.close)
  const user = await userToken(h)
  const noRoles = claimsOf((await exchange(h, user.access_token, {}, basic('no-roles', 'no-roles-secret'))).json().access_token)
  t.notOk('roles' in noRoles, 'a client without release_roles gets no roles')
  t.same(noRoles.act, { sub: 'no-roles' })

  const first = (await exchange(h, user.access_token)).json().access_token as string
  const second = await exchange(h, first, {}, basic('second-hop', 'second-hop-secret'))
  t.equal(second.statusCode, 200, 'the exchanged token exchanged again')
  const chained = claimsOf(second.json().access_token)
  t.same(chained.act, { sub: 'second-hop', act: { sub: 'gateway' } }, 'RFC 8693 §4.1: the current actor outermost')
  t.equal(chained.sub, claimsOf(user.access_token).sub)
  t.equal(chained.client_id, 'second-hop')
  t.notOk('roles' in chained, 'second-hop may not receive roles')

  // 100 s before the subject expires, the exchanged token ends with it
  const subjectExp = claimsOf(user.access_token).exp as number
  h.clock.advance((subjectExp - 100) * 1000 - h.clock.ms)
  const late = await exchange(h, user.access_token)
  t.equal(late.statusCode, 200)
  t.equal(claimsOf(late.json().access_token).exp, subjectExp)
  t.ok(late.json().expires_in <= 100 && late.json().expires_in >= 99, 'expires_in says so')
})

t.test('an actor token issued to the caller itself is accepted', async (t) => {
  const h = await startOidcApp({ clients: EXCHANGE_CLIENTS })
  t.teardown(h.close)
  const user = await userToken(h)
  const own = (await post(h, { grant_type: 'client_credentials' }, GATEWAY)).json().access_token as string
  const res = await exchange(h, user.access_token, { actor_token: own, actor_token_type: AT })
  t.equal(res.statusCode, 200, 'exchanged')
  t.same(claimsOf(res.json().access_token).act, { sub: 'gateway' })
})

t.test('parameters: RFC 8693 §2.1 as DESIGN §10.4 narrows it', async (t) => {
  const h = await startOidcApp({ clients: EXCHANGE_CLIENTS })
  t.teardown(h.close)
  const user = await userToken(h)
  const cases: [string, Record<string, string>, string][] = [
    ['no subject_token', { subject_token: '' }, 'invalid_request'],
    ['no subject_token_type', { subject_token_type: '' }, 'invalid_request'],
    ['a subject type other than access_token', { subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }, 'invalid_request'],
    ['actor_token without its type', { actor_token: user.access_token }, 'invalid_request'],
    ['actor_token_type without a token', { actor_token_type: AT }, 'invalid_request'],
    ['an actor type other than access_token', { actor_token: user.access_token, actor_token_type: 'urn:ietf:params:oauth:token-type:id_token' }, 'invalid_request'],
    ['requested_token_type refresh_token', { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, 'invalid_request'],
    ['no target', { audience: '' }, 'invalid_target'],
    ['a relative resource', { audience: '', resource: 'reports' }, 'invalid_target'],
    ['a resource with a fragment', { audience: '', resource: 'api://reports#x' }, 'invalid_target'],
    ['an unknown audience', { audience: 'api://nowhere' }, 'invalid_target'],
    ['a malformed scope', { scope: 'reports:read  "x"' }, 'invalid_scope'],
  ]
  for (const [name, extra, error] of cases) {
    const res = await exchange(h, user.access_token, extra)
    t.equal(res.statusCode, 400, name)
    t.equal(res.json().error, error, name)
  }
  const repeated = await h.app.inject({
    method: 'POST',
    url: '/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: GATEWAY },
    payload: `${form({ grant_type: GRANT, subject_token: user.access_token, subject_token_type: AT, audience: 'api://reports' })}&audience=api://resource`,
  })
  t.equal(repeated.json().error, 'invalid_request', 'a repeated audience (RFC 6749 §3.2)')
  t.equal(h.logs.events('token.exchanged').length, 0, 'nothing was exchanged')
})

t.test('discovery advertises the grant', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.ok(doc.grant_types_supported.includes(GRANT))
})

t.test('the small rules', async (t) => {
  t.equal(exchangeTarget('api://a', undefined), 'api://a')
  t.equal(exchangeTarget(undefined, 'reports'), 'reports', 'an audience is a name, not necessarily a URI')
  t.equal(exchangeTarget('https://a.example/', 'https://a.example/'), 'https://a.example/')
  t.throws(() => exchangeTarget('https://a.example/', 'https://b.example/'), { code: 'invalid_target' })
  t.throws(() => exchangeTarget(undefined, 'two words'), { code: 'invalid_target' })
  t.equal(exchangeScope(undefined, 'openid a b c', ['b', 'c', 'd']), 'b c')
  t.equal(exchangeScope('c', 'openid a b c', ['b', 'c', 'd']), 'c')
  t.throws(() => exchangeScope('d', 'openid a b c', ['b', 'c', 'd']), { code: 'invalid_scope' }, 'within the target, not the subject')
  t.throws(() => exchangeScope('a', 'openid a b c', ['b', 'c', 'd']), { code: 'invalid_scope' }, 'within the subject, not the target')
  t.throws(() => exchangeScope(undefined, 'openid a', ['b']), { code: 'invalid_scope' }, 'nothing in common')
  t.same(actClaim('b', undefined), { sub: 'b' })
  t.same(actClaim('c', { sub: 'b', act: { sub: 'a' } }), { sub: 'c', act: { sub: 'b', act: { sub: 'a' } } })
})

t.test('client metadata token_exchange: parsed, checked, kept by the stores', async (t) => {
  const client = (extra: Record<string, unknown>) => ({ client_id: 'c', client_secret: 's', grant_types: [GRANT], audience: 'api://resource', ...extra })
  const ok = parseAuthFileConfig({ clients: [client({ token_exchange: { audiences: ['api://reports', 'api://reports', 'ledger'] } })] }, 'f')
  t.same(ok.problems, [])
  t.same(ok.config.clients[0]!.token_exchange, { audiences: ['api://reports', 'ledger'] }, 'duplicates dropped')
  t.same(clientFromConfig(ok.config.clients[0]!).tokenExchange.audiences, ['api://reports', 'ledger'])
  t.same(clientFromConfig(parseAuthFileConfig({ clients: [client({})] }, 'f').config.clients[0]!).tokenExchange.audiences, [], 'absent: no audience')
  for (const bad of [['api://reports'], { audiences: 'api://reports' }, { audiences: [''] }, { audiences: ['two words'] }, { audiences: [7] }]) {
    t.match(parseAuthFileConfig({ clients: [client({ token_exchange: bad })] }, 'f').problems, [/clients\[0\]\.token_exchange must be/], JSON.stringify(bad))
  }
  const pub = parseAuthFileConfig({ clients: [{ client_id: 'p', token_endpoint_auth_method: 'none', grant_types: [GRANT] }] }, 'f')
  t.match(pub.problems, [/a public client \(none\) may not use token exchange/])
  // Redis and PostgreSQL keep the config-file form: the metadata survives a round trip.
  const { client_secret: _secret, ...stored } = ok.config.clients[0]!
  t.same(storedClient(stored, 'sha256:' + 'A'.repeat(43), 'test').token_exchange, { audiences: ['api://reports', 'ledger'] })
})

t.test('the exchange parameters that hold tokens are redacted wherever they reach a log line', async (t) => {
  t.same(redactSecrets({ subject_token: 'eyJ.a.b', actor_token: 'eyJ.c.d', subject_token_type: AT }), { subject_token: '[redacted]', actor_token: '[redacted]', subject_token_type: AT })
  t.same(redactSecrets({ body: { subject_token: 'eyJ.a.b' } }), { body: { subject_token: '[redacted]' } })
})

t.test('a client that requires a second factor exchanges only tokens of a sign-in with one; the exchanged token keeps acr', async (t) => {
  const strict = { ...EXCHANGE_CLIENTS[0]!, client_id: 'strict-gateway', client_secret: 'strict-secret', grant_types: [GRANT], require_mfa: true }
  const h = await startOidcApp({ clients: [...EXCHANGE_CLIENTS, strict] })
  t.teardown(h.close)
  const STRICT = basic('strict-gateway', 'strict-secret')
  const pwdOnly = await userToken(h)
  const refused = await exchange(h, pwdOnly.access_token, {}, STRICT)
  t.equal(refused.statusCode, 400)
  t.match(refused.json(), { error: 'invalid_request', error_description: /second factor/ })
  t.equal((await exchange(h, pwdOnly.access_token)).statusCode, 200, 'a client without require_mfa exchanges it')

  // A token of a sign-in with a second factor (its family says how the user signed in).
  const alice = (await h.deps.users.findByUsername('alice'))!
  const { family } = await h.deps.families.create({ userId: alice.id, clientId: 'cli', scope: 'openid documents:read reports:read', authTime: h.clock.seconds(), amr: ['pwd', 'otp', 'mfa'] })
  const subject = await h.deps.tokens.issue({ sub: alice.id, clientId: 'cli', audience: 'api://resource', scope: 'documents:read reports:read', sid: family.id, authTime: h.clock.seconds() })
  const ok = await exchange(h, subject.token, {}, STRICT)
  t.equal(ok.statusCode, 200)
  t.equal(claimsOf(ok.json().access_token).acr, 'http://schemas.openid.net/pape/policies/2007/06/multi-factor', 'acr of the subject\'s sign-in')
})
