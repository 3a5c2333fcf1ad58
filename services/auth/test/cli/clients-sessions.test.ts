import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { exportJWK, generateKeyPair } from 'jose'
import { startRedis } from '@gatehouse/test-harness'
import { RECENT_REVOCATIONS_KEY } from '@gatehouse/service-kit'
import { basic, passwordLogin, token } from '../helpers.js'
import { cliRunner, liveService } from './harness.js'
import { DEV_CONFIG_FILE } from '../../src/config.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

const ENV = { REDIS_URL: server.url }
const cli = cliRunner(ENV)

t.beforeEach(async () => {
  await admin.call('FLUSHALL')
})

const serviceToken = (app: Parameters<typeof token>[0], id: string, secret: string) =>
  token(app, { grant_type: 'client_credentials', scope: 'internal:read' }, basic(id, secret))

t.test('clients add: the generated secret is printed once and works at once; never logged', async (t) => {
  const live = await liveService(t, ENV)
  const added = await cli(['clients', 'add', 'reports', '--name', 'Reports', '--grant-type', 'client_credentials', '--scope', 'internal:read', '--json'])
  t.equal(added.code, 0, added.stderr)
  const out = added.json()
  const secret = out.client_secret as string
  t.match(secret, /^[A-Za-z0-9_-]{43}$/, '256 bits, base64url')
  t.match(out.client, { client_id: 'reports', client_name: 'Reports', token_endpoint_auth_method: 'client_secret_basic', grant_types: ['client_credentials'], scope: 'internal:read', audience: 'api://resource', has_secret: true })
  t.notOk(JSON.stringify(out.client).includes(secret))
  t.notMatch(added.stderr, new RegExp(secret), 'the audit line does not carry it')
  t.match(added.events('admin.client_added'), [{ client_id: 'reports', actor: 'test-operator' }])
  t.equal((await serviceToken(live.app, 'reports', secret)).statusCode, 200, 'the running service accepts it')
  const probe = await live.app.inject({ method: 'POST', url: '/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`reports:${secret}`).toString('base64')}` }, payload: 'token=x' })
  t.equal(probe.statusCode, 403, 'without --introspection it may not introspect')

  const human = await cli(['clients', 'add', 'reports2', '--grant-type', 'client_credentials', '--scope', 'internal:read'])
  const printed = human.stdout.trim().split('\n').pop()!
  t.match(printed, /^[A-Za-z0-9_-]{43}$/, 'the secret alone on the last line')
  t.equal((await serviceToken(live.app, 'reports2', printed)).statusCode, 200)

  const dup = await cli(['clients', 'add', 'reports', '--grant-type', 'client_credentials'])
  t.equal(dup.code, 1)
  t.match(dup.stderr, /a client "reports" exists/)
})

t.test('clients add: public and private_key_jwt clients get no secret; bad input exits 2', async (t) => {
  const spa = await cli(['clients', 'add', 'spa2', '--auth-method', 'none', '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--scope', 'openid', '--redirect-uri', 'https://spa.example/cb', '--json'])
  t.equal(spa.code, 0, spa.stderr)
  t.notOk('client_secret' in spa.json())
  t.match(spa.json().client, { has_secret: false, redirect_uris: ['https://spa.example/cb'], introspection: false, release_roles: false, require_pushed_authorization_requests: false })
  const par = await cli(['clients', 'add', 'spa-par', '--auth-method', 'none', '--grant-type', 'authorization_code', '--scope', 'openid', '--redirect-uri', 'https://spa.example/cb', '--require-par', '--json'])
  t.equal(par.code, 0, par.stderr)
  t.match(par.json().client, { require_pushed_authorization_requests: true }, 'RFC 9126 §6 metadata, set explicitly')
  const rs = await cli(['clients', 'add', 'rs', '--grant-type', 'password', '--scope', 'openid', '--introspection', '--release-roles', 'false', '--json'])
  t.equal(rs.code, 0, rs.stderr)
  t.match(rs.json().client, { introspection: true, release_roles: false }, 'the DESIGN §10.1 metadata, set explicitly')
  const fp = await cli(['clients', 'add', 'fp', '--grant-type', 'password', '--scope', 'openid', '--json'])
  t.match(fp.json().client, { introspection: false, release_roles: true, dpop_bound_access_tokens: false }, 'a password-grant client releases roles by default')
  const dp = await cli(['clients', 'add', 'dp', '--grant-type', 'client_credentials', '--scope', 'internal:read', '--dpop-bound-access-tokens', '--json'])
  t.equal(dp.code, 0, dp.stderr)
  t.match(dp.json().client, { dpop_bound_access_tokens: true }, 'RFC 9449 §5.2 metadata')
  t.match(par.json().client, { require_mfa: false }, 'require_mfa false when not set')
  const mfa = await cli(['clients', 'add', 'mfa-app', '--grant-type', 'authorization_code', '--scope', 'openid', '--redirect-uri', 'https://app.example/cb', '--require-mfa', '--json'])
  t.equal(mfa.code, 0, mfa.stderr)
  t.match(mfa.json().client, { require_mfa: true }, 'DESIGN §10.5 metadata')
  const mfaPassword = await cli(['clients', 'add', 'mfa-pw', '--grant-type', 'password', '--scope', 'openid', '--require-mfa'])
  t.equal(mfaPassword.code, 2, 'require_mfa with the password grant is refused')
  t.match(mfaPassword.stderr, /require_mfa cannot be met by the password grant/)
  const gw = await cli(['clients', 'add', 'gw', '--grant-type', 'urn:ietf:params:oauth:grant-type:token-exchange', '--exchange-audience', 'api://reports', '--json'])
  t.equal(gw.code, 0, gw.stderr)
  t.match(gw.json().client, { grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'], token_exchange: { audiences: ['api://reports'] } }, 'token exchange metadata (RFC 8693)')
  const badFlag = await cli(['clients', 'add', 'x2', '--grant-type', 'password', '--release-roles', 'maybe'])
  t.equal(badFlag.code, 2)
  t.match(badFlag.stderr, /--release-roles must be true or false/)

  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const dir = t.testdir({})
  writeFileSync(`${dir}/pub.json`, JSON.stringify({ keys: [await exportJWK(publicKey)] }))
  writeFileSync(`${dir}/priv.json`, JSON.stringify({ keys: [await exportJWK(privateKey)] }))
  const pkj = await cli(['clients', 'add', 'svc-jwt', '--auth-method', 'private_key_jwt', '--grant-type', 'client_credentials', '--jwks-file', `${dir}/pub.json`, '--json'])
  t.equal(pkj.code, 0, pkj.stderr)
  t.match(pkj.json().client, { has_secret: false, jwks_keys: 1 })

  const cases: [string[], RegExp][] = [
    [['clients', 'add', 'x'], /at least one --grant-type/],
    [['clients', 'add', 'x', '--grant-type', 'implicit'], /--grant-type must be one of/],
    [['clients', 'add', 'x', '--auth-method', 'magic', '--grant-type', 'password'], /--auth-method must be one of/],
    [['clients', 'add', 'x', '--grant-type', 'authorization_code'], /redirect_uris are required/],
    [['clients', 'add', 'x', '--grant-type', 'authorization_code', '--redirect-uri', 'not a url'], /not an absolute URL/],
    [['clients', 'add', 'x', '--grant-type', 'authorization_code', '--redirect-uri', 'javascript:alert(1)'], /redirect_uris of client "x": "javascript:alert\(1\)" uses the scheme "javascript:"/],
    [['clients', 'add', 'x', '--grant-type', 'authorization_code', '--redirect-uri', 'data:text/html,hi'], /"data:text\/html,hi" uses the scheme "data:"/],
    [['clients', 'add', 'x', '--grant-type', 'authorization_code', '--redirect-uri', 'http://app.example.com/cb'], /plain http on a host that is not loopback/],
    [['clients', 'add', 'x', '--grant-type', 'authorization_code', '--redirect-uri', 'https://app.example.com/cb', '--post-logout-redirect-uri', 'javascript:x'], /post_logout_redirect_uris of client "x"/],
    [['clients', 'add', 'x', '--auth-method', 'none', '--grant-type', 'client_credentials'], /public client/],
    [['clients', 'add', 'x', '--auth-method', 'private_key_jwt', '--grant-type', 'client_credentials'], /jwks.*required/],
    [['clients', 'add', 'x', '--auth-method', 'private_key_jwt', '--grant-type', 'client_credentials', '--jwks-file', `${dir}/priv.json`], /holds private keys/],
    [['clients', 'add', 'has space', '--grant-type', 'client_credentials'], /visible ASCII/],
  ]
  for (const [argv, re] of cases) {
    const r = await cli(argv)
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, re)
  }
  t.equal((await cli(['clients', 'add', 'x', '--grant-type', 'password', '--jwks-file', `${dir}/missing.json`])).code, 1)
})

t.test('clients list, show, rotate-secret and delete', async (t) => {
  const live = await liveService(t, ENV)
  const list = await cli(['clients', 'list', '--json'])
  t.same((list.json().clients as { client_id: string }[]).map((c) => c.client_id).sort(), ['cli', 'cli-device', 'reporting-service', 'resource-service', 'spa', 'web'], 'seeded from the config file')
  t.match((await cli(['clients', 'show', 'web', '--json'])).json(), { client: { client_id: 'web', redirect_uris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'] } })
  t.match((await cli(['clients', 'show', 'resource-service', '--json'])).json(), { client: { grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'], token_exchange: { audiences: ['api://reports'] } } }, 'token exchange metadata (RFC 8693)')
  t.equal((await cli(['clients', 'show', 'nope'])).code, 1)

  t.equal((await serviceToken(live.app, 'reporting-service', 'reporting-secret')).statusCode, 200)
  const refused = await cli(['clients', 'rotate-secret', 'reporting-service'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /pass --yes/)
  const rotated = await cli(['clients', 'rotate-secret', 'reporting-service', '--yes', '--json'])
  t.equal(rotated.code, 0)
  const secret = rotated.json().client_secret as string
  t.match(rotated.events('admin.client_secret_rotated'), [{ client_id: 'reporting-service' }])
  t.notMatch(rotated.stderr, new RegExp(secret))
  t.equal((await serviceToken(live.app, 'reporting-service', 'reporting-secret')).statusCode, 401, 'the old secret stops working at once')
  t.equal((await serviceToken(live.app, 'reporting-service', secret)).statusCode, 200)
  const publicClient = await cli(['clients', 'rotate-secret', 'spa', '--yes'])
  t.equal(publicClient.code, 2)
  t.match(publicClient.stderr, /authenticates with none, not a secret/)

  t.equal((await cli(['clients', 'delete', 'reporting-service'])).code, 1, 'no --yes, no terminal: refused')
  const deleted = await cli(['clients', 'delete', 'reporting-service', '--yes'])
  t.equal(deleted.code, 0)
  t.match(deleted.events('admin.client_deleted'), [{ client_id: 'reporting-service' }])
  t.equal((await serviceToken(live.app, 'reporting-service', secret)).statusCode, 401)
  t.equal((await cli(['clients', 'delete', 'reporting-service', '--yes'])).code, 1)
})

t.test('sessions list and revoke (by user, by family): the refresh tokens die and resource servers are told', async (t) => {
  const live = await liveService(t, ENV)
  const responses = [await passwordLogin(live.app), await passwordLogin(live.app)]
  for (const r of responses) t.equal(r.statusCode, 200, r.body)
  const logins = responses.map((r) => r.json() as { refresh_token: string; access_token: string })
  const sids = logins.map((l) => JSON.parse(Buffer.from(l.access_token.split('.')[1]!, 'base64url').toString()).sid as string)
  const listed = await cli(['sessions', 'list', '--user', 'ALICE', '--json'])
  t.equal(listed.code, 0, listed.stderr)
  t.same((listed.json().sessions as { family_id: string }[]).map((s) => s.family_id).sort(), [...sids].sort())
  t.match((listed.json().sessions as unknown[])[0], { client_id: 'cli', user_id: /^u_/, scope: String, created_at: String, expires_at: String, generation: 0 })
  t.match((await cli(['sessions', 'list', '--user', 'bob'])).stdout, /bob has no live sessions/)
  t.match((await cli(['users', 'show', 'alice', '--json'])).json(), { sessions: 2 })

  const one = await cli(['sessions', 'revoke', '--family', sids[0]!, '--yes', '--json'])
  t.equal(one.code, 0, one.stderr)
  t.same(one.json().revoked_families, [sids[0]])
  t.match(one.events('admin.family_revoked'), [{ family_id: sids[0] }])
  t.equal((await token(live.app, { grant_type: 'refresh_token', refresh_token: logins[0]!.refresh_token })).statusCode, 400)
  t.equal((await token(live.app, { grant_type: 'refresh_token', refresh_token: logins[1]!.refresh_token })).statusCode, 200, 'the other session lives')
  const again = await cli(['sessions', 'revoke', '--family', sids[0]!, '--yes'])
  t.equal(again.code, 1, 'already revoked')
  t.match(again.stderr, /was already revoked; its revocation was announced again/, 'and the operator is told it was announced again')
  t.match(again.events('admin.family_reannounced'), [{ family_id: sids[0] }])
  t.equal((await cli(['sessions', 'revoke', '--family', '../../etc', '--yes'])).code, 1)

  const all = await cli(['sessions', 'revoke', '--user', 'alice', '--yes', '--json'])
  t.same(all.json().revoked_families, [sids[1]])
  t.match(all.events('admin.sessions_revoked'), [{ username: 'alice', families_revoked: 1 }])
  t.same(((await admin.call('ZRANGE', RECENT_REVOCATIONS_KEY, 0, -1)) as string[]).sort(), [...sids].sort(), 'both published (DESIGN §6)')
  t.same((await cli(['sessions', 'list', '--user', 'alice', '--json'])).json().sessions, [])

  for (const argv of [['sessions', 'list'], ['sessions', 'revoke', '--yes'], ['sessions', 'revoke', '--user', 'a', '--family', 'b', '--yes']]) {
    t.equal((await cli(argv)).code, 2, argv.join(' '))
  }
  t.equal((await cli(['sessions', 'revoke', '--user', 'alice'])).code, 1, 'refused without --yes')
  t.equal((await cli(['sessions', 'list', '--user', 'nobody'])).code, 1)
})

t.test('clients add --resource (RFC 8707): a configured resource, shown by list and show, usable at once', async (t) => {
  const dev = JSON.parse(readFileSync(DEV_CONFIG_FILE, 'utf8')) as { resources: unknown[] }
  dev.resources.push({ audience: 'api://reports', scopes: ['reports:read'] })
  const file = `${t.testdir({})}/auth.json`
  writeFileSync(file, JSON.stringify(dev))
  const env = { ...ENV, AUTH_CONFIG_FILE: file }
  const live = await liveService(t, env)
  const run = cliRunner(env)

  const added = await run(['clients', 'add', 'dash', '--grant-type', 'client_credentials', '--scope', 'documents:read reports:read', '--resource', 'api://reports', '--resource', 'api://reports', '--json'])
  t.equal(added.code, 0, added.stderr)
  t.match(added.json().client, { audience: 'api://resource', resources: ['api://reports'] }, 'the default audience stays; the repeat is one')
  const shown = await run(['clients', 'show', 'dash'])
  t.match(shown.stdout, /^resources: api:\/\/reports$/m)
  t.match((await run(['clients', 'list', '--json'])).json(), { clients: [{ client_id: 'cli', resources: [] }] })
  const secret = added.json().client_secret as string
  const tok = await token(live.app, { grant_type: 'client_credentials', resource: 'api://reports' }, basic('dash', secret))
  t.equal(tok.statusCode, 200, tok.body)
  t.match(tok.json(), { scope: 'reports:read' }, "a token for api://reports carries none of api://resource's scopes")

  for (const [value, re] of [
    ['api://nowhere', /"api:\/\/nowhere" is not the audience of a configured resource/],
    ['api://reports#frag', /must not have a fragment/],
    ['reports', /is not an absolute URI/],
  ] as const) {
    const r = await run(['clients', 'add', 'x', '--grant-type', 'client_credentials', '--resource', value])
    t.equal(r.code, 2, value)
    t.match(r.stderr, re)
  }
})
