/**
 * `gatehouse sessions list|revoke` on login sessions (DESIGN §10.1): the CLI and the service on
 * one private Redis; browsers signed in through /authorize and the login form (inject).
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { startRedis } from '@gatehouse/test-harness'
import { s256 } from '../../src/authorize/pkce.js'
import { form } from '../helpers.js'
import { parseLoginForm } from '../oidc/harness.js'
import { cliRunner, liveService } from './harness.js'

const server = await startRedis()
t.teardown(() => server.stop())
const ENV = { REDIS_URL: server.url }
const cli = cliRunner(ENV)
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

function authorizeUrl(clientId: string, redirectUri: string): string {
  return `/authorize?${new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid', code_challenge: s256(VERIFIER), code_challenge_method: 'S256' })}`
}
const WEB = ['web', 'http://127.0.0.1:3000/callback'] as const
const SPA = ['spa', 'http://127.0.0.1:3000/spa/callback'] as const

/** Signs `username` in from a browser with this User-Agent and address; returns its session cookie. */
async function signIn(app: FastifyInstance, userAgent: string, remoteAddress: string, username = 'alice'): Promise<Record<string, string>> {
  const page = await app.inject({ method: 'GET', url: authorizeUrl(...WEB), headers: { 'user-agent': userAgent }, remoteAddress })
  const res = await app.inject({
    method: 'POST', url: '/login', headers: { ...FORM, 'user-agent': userAgent }, remoteAddress,
    payload: form({ ...parseLoginForm(page.body), username, password: `${username}-password` }),
    cookies: Object.fromEntries(page.cookies.map((c) => [c.name, c.value])),
  })
  if (res.statusCode !== 303) throw new Error(`login answered ${res.statusCode}`)
  return { gh_session: res.cookies.find((c) => c.name === 'gh_session')!.value }
}

t.test('sessions list shows each browser (device, address, created, last use, clients); revoke --session ends one; set-password ends all', async (t) => {
  const live = await liveService(t, ENV)
  const laptop = await signIn(live.app, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', '198.51.100.4')
  const phone = await signIn(live.app, 'Mozilla/5.0 (iPhone) Safari/604.1', '203.0.113.9')
  const sso = await live.app.inject({ method: 'GET', url: authorizeUrl(...SPA), cookies: laptop })
  t.equal(sso.statusCode, 302, 'the laptop signs in to the spa without the form')

  const listed = await cli(['sessions', 'list', '--user', 'alice', '--json'])
  t.equal(listed.code, 0, listed.stderr)
  const sessions = listed.json().login_sessions as Record<string, unknown>[]
  t.equal(sessions.length, 2)
  t.match(sessions[0], { device: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', address: '198.51.100.4', clients: ['web', 'spa'], created_at: String, last_used_at: String, expires_at: String })
  t.match(sessions[1], { device: 'Mozilla/5.0 (iPhone) Safari/604.1', address: '203.0.113.9', clients: ['web'] })
  t.ok(Date.parse(sessions[0]!.last_used_at as string) >= Date.parse(sessions[0]!.created_at as string))
  const human = await cli(['sessions', 'list', '--user', 'alice'])
  t.match(human.stdout, /session [A-Za-z0-9_-]{22}  device="Mozilla\/5.0 \(iPhone\) Safari\/604.1"  address=203.0.113.9/)

  const laptopId = sessions[0]!.session_id as string
  const one = await cli(['sessions', 'revoke', '--session', laptopId, '--yes', '--json'])
  t.equal(one.code, 0, one.stderr)
  t.same(one.json().ended_sessions, [laptopId])
  t.match(one.events('session.ended'), [{ session_id: laptopId, reason: 'admin', clients: ['web', 'spa'] }])
  t.match(one.events('admin.session_revoked'), [{ session_id: laptopId }])
  const refused = await live.app.inject({ method: 'GET', url: authorizeUrl(...SPA), cookies: laptop })
  t.equal(refused.statusCode, 200, 'the laptop gets the login page')
  t.equal((await live.app.inject({ method: 'GET', url: authorizeUrl(...SPA), cookies: phone })).statusCode, 302, 'the phone is still signed in')
  t.equal((await cli(['sessions', 'revoke', '--session', laptopId, '--yes'])).code, 1, 'already ended')
  t.equal((await cli(['sessions', 'revoke', '--session', '../x', '--yes'])).code, 1)
  t.equal((await cli(['sessions', 'revoke', '--session', laptopId, '--user', 'alice', '--yes'])).code, 2)

  const changed = await cli(['users', 'set-password', 'alice', '--password-stdin', '--json'], { stdin: 'a-brand-new-password' })
  t.equal(changed.code, 0, changed.stderr)
  t.equal((changed.json().ended_sessions as string[]).length, 1)
  t.equal((await live.app.inject({ method: 'GET', url: authorizeUrl(...SPA), cookies: phone })).statusCode, 200, 'the phone gets the login page')
  t.same((await cli(['sessions', 'list', '--user', 'alice', '--json'])).json().login_sessions, [])
})
