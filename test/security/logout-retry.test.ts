/**
 * A logout that fails half-way is finished by the user's retry (issue 20: no revocation lost).
 * Ending a login session removes it and revokes the families started from it. Were the session
 * removed first and the revocation then failed (a Redis blip: 503, "you are still signed in"),
 * the retry would find no session to end, say "signed out", and the session's refresh tokens
 * would live on (up to REFRESH_TOKEN_TTL), their access tokens never announced dead.
 */
import t from 'tap'
import { StoreUnavailable } from '../../services/auth/src/index.js'
import { browserLogin, claimsOf, exchangeCode, postForm, startOidcApp, WEB } from './auth-fixture.js'

t.test('the families of a session outlive no logout, even one whose first attempt failed', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const login = await browserLogin(h)
  const tokens = (await exchangeCode(h, login.code)).json()
  const families = h.deps.families
  const revokeBySession = families.revokeBySession.bind(families)
  let cut = 1
  families.revokeBySession = async (...args) => {
    if (cut-- > 0) throw new StoreUnavailable('test: the connection to Redis was cut')
    return await revokeBySession(...args)
  }

  const logout = { method: 'GET' as const, url: `/logout?id_token_hint=${tokens.id_token}`, cookies: login.session }
  const first = await h.app.inject(logout)
  t.equal(first.statusCode, 503, 'the first attempt fails, and says so')
  t.match(first.body, /still signed in/)
  const retry = await h.app.inject(logout)
  t.equal(retry.statusCode, 200)
  t.match(retry.body, /You have been signed out/)

  t.equal(await h.deps.sessions.get(claimsOf(tokens.id_token).sid as string), null, 'the session is gone')
  const refresh = await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, WEB)
  t.equal(refresh.json().error, 'invalid_grant', "the session's refresh token is dead")
  t.ok(h.published().some((p) => p.sid === claimsOf(tokens.access_token).sid), 'and its access token announced dead')
})
