/**
 * COOKIE_SECRET and REFRESH_TOKEN_SECRET rotate without logging everyone out (DESIGN §10.1): each
 * is a list whose first secret signs and whose every secret verifies, and the two are separate,
 * so rotating the cookie secret leaves refresh tokens alone. Replicas restarted on one Redis.
 */
import t, { type Test } from 'tap'
import { sign } from '@fastify/cookie'
import { startRedis } from '@gatehouse/test-harness'
import { RefreshTokenCodec } from '../../src/families/refresh-token-codec.js'
import { basic, form } from '../helpers.js'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'

const redis = await startRedis()
t.teardown(() => redis.stop())

const X = 'cookie-secret-x-'.padEnd(40, 'x')
const Y = 'cookie-secret-y-'.padEnd(40, 'y')
const A = 'refresh-secret-a-'.padEnd(40, 'a')
const B = 'refresh-secret-b-'.padEnd(40, 'b')

async function replica(t: Test, env: Record<string, string>): Promise<OidcApp> {
  const h = await startOidcApp({ env: { REDIS_URL: redis.url, ...env } })
  t.teardown(h.close)
  return h
}

async function refresh(h: OidcApp, refreshToken: string) {
  return await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'refresh_token', refresh_token: refreshToken }) })
}

const AUTHORIZE = '/authorize?' + new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: 'http://127.0.0.1:3000/callback', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString()

t.test('rotating COOKIE_SECRET keeps refresh tokens; rotating REFRESH_TOKEN_SECRET keeps them while the old secret is listed', async (t) => {
  const first = await replica(t, { COOKIE_SECRET: X, REFRESH_TOKEN_SECRET: A })
  const login = await first.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }) })
  t.equal(login.statusCode, 200)
  const rt1 = login.json().refresh_token as string

  // The cookie secret replaced outright (a leaked COOKIE_SECRET): refresh tokens do not depend on it.
  const cookieRotated = await replica(t, { COOKIE_SECRET: Y, REFRESH_TOKEN_SECRET: A })
  const r2 = await refresh(cookieRotated, rt1)
  t.equal(r2.statusCode, 200, 'a refresh token survives a new COOKIE_SECRET')
  const rt2 = r2.json().refresh_token as string

  // A new refresh secret first, the old one still listed: old tokens rotate into new-key tokens.
  const both = await replica(t, { COOKIE_SECRET: Y, REFRESH_TOKEN_SECRET: `${B},${A}` })
  const r3 = await refresh(both, rt2)
  t.equal(r3.statusCode, 200, 'a token MACed under the older secret is accepted')
  const rt3 = r3.json().refresh_token as string
  t.ok(RefreshTokenCodec.fromSecrets([B]).parse(rt3), 'its successor is MACed under the first secret')
  t.equal(RefreshTokenCodec.fromSecrets([A]).parse(rt3), null)

  // Once the old secret is dropped, only tokens of the new one remain valid.
  const onlyNew = await replica(t, { COOKIE_SECRET: Y, REFRESH_TOKEN_SECRET: B })
  t.equal((await refresh(onlyNew, rt3)).statusCode, 200, 'the new-key token works with the new secret alone')
  t.equal(RefreshTokenCodec.fromSecrets([B]).parse(rt2), null, 'an old-key token is refused without its secret')
  t.ok(RefreshTokenCodec.fromSecrets([B, A]).parse(rt2), 'and accepted while it is listed')
})

t.test('a session cookie signed with an older COOKIE_SECRET still works while that secret is listed', async (t) => {
  const h = await replica(t, { COOKIE_SECRET: `${Y},${X}`, REFRESH_TOKEN_SECRET: A })
  const { token } = await h.deps.sessions.start({ userId: (await h.deps.users.findByUsername('alice'))!.id, authTime: Math.floor(h.clock.now() / 1000) })
  const signedOld = sign(token, X)
  const live = await h.app.inject({ method: 'GET', url: AUTHORIZE, cookies: { gh_session: signedOld } })
  t.equal(live.statusCode, 302, 'the live session skips the login form')
  const dropped = await replica(t, { COOKIE_SECRET: Y, REFRESH_TOKEN_SECRET: A })
  t.equal((await dropped.app.inject({ method: 'GET', url: AUTHORIZE, cookies: { gh_session: signedOld } })).statusCode, 200, 'once X is dropped, its cookies are not sessions')
  t.equal((await dropped.app.inject({ method: 'GET', url: AUTHORIZE, cookies: { gh_session: sign(token, Y) } })).statusCode, 302, 'a cookie of the first secret is')
})
