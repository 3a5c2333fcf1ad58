/**
 * Logs never contain a password, secret, token, code or cookie (DESIGN §8, §9): every kind of
 * secret goes through every endpoint that takes it — accepted and refused, in headers, bodies,
 * query strings and cookies — with the log at `trace`, and the captured output is scanned for each.
 */
import t from 'tap'
import {
  ASSERTION_TYPE,
  authorizeQuery,
  browserLogin,
  CLI,
  clientAssertion,
  exchangeCode,
  FORM,
  form,
  postForm,
  startOidcApp,
  VERIFIER,
  WEB,
  basic,
} from './auth-fixture.js'

t.test('every secret through every endpoint: none reaches the log', async (t) => {
  const h = await startOidcApp({ env: { LOG_LEVEL: 'trace' } })
  t.teardown(h.close)
  const secrets = new Map<string, string>()
  const keep = (name: string, value: string | undefined) => {
    if (typeof value === 'string' && value.length >= 8) secrets.set(name, value)
  }
  keep('password', 'alice-password')
  keep('wrong password', 'Wr0ng-Pa55word')
  keep('client secret', 'cli-secret')
  keep('web client secret', 'web-secret')
  keep('wrong client secret', 'Wr0ng-Cl1ent-Secret')
  keep('basic credentials', CLI.slice('Basic '.length))
  keep('code verifier', VERIFIER)

  // Password grant: accepted, wrong password, wrong client secret, client_secret_post.
  const pw = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid profile' })).json()
  await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'Wr0ng-Pa55word' })
  await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password' }, basic('cli', 'Wr0ng-Cl1ent-Secret'))
  await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', client_id: 'cli', client_secret: 'cli-secret' }, null)
  keep('access token', pw.access_token)
  keep('refresh token', pw.refresh_token)
  keep('id token', pw.id_token)

  // Refresh: a rotation, then the spent token again (reuse detection logs the event, not the token).
  const rotated = (await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: pw.refresh_token })).json()
  keep('rotated refresh token', rotated.refresh_token)
  keep('rotated access token', rotated.access_token)
  h.clock.advanceSeconds(60)
  await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: pw.refresh_token })

  // Browser: the login form (wrong, then right), the code, the exchange, a replayed code.
  const wrongLogin = await browserLogin(h, {}, 'Wr0ng-Pa55word').catch(() => null)
  t.equal(wrongLogin, null, 'a wrong password gets no code')
  const login = await browserLogin(h)
  keep('authorization code', login.code)
  keep('session cookie', login.session.gh_session)
  keep('csrf token', login.csrf)
  keep('pending-login cookie', login.interactionCookie)
  const codeTokens = (await exchangeCode(h, login.code)).json()
  keep('code-flow access token', codeTokens.access_token)
  keep('code-flow refresh token', codeTokens.refresh_token)
  keep('code-flow id token', codeTokens.id_token)
  await exchangeCode(h, login.code)
  await exchangeCode(h, 'c'.repeat(43), { code_verifier: 'Wr0ngVerifier' + 'x'.repeat(40) })
  await h.app.inject({ method: 'GET', url: `/authorize?code=${login.code}&access_token=${pw.access_token}`, cookies: login.session })

  // A pushed authorization request (RFC 9126): client_secret_post, and a wrong secret.
  await h.app.inject({ method: 'POST', url: '/par', headers: FORM, payload: `${authorizeQuery()}&client_secret=web-secret` })
  await h.app.inject({ method: 'POST', url: '/par', headers: FORM, payload: `${authorizeQuery()}&client_secret=Wr0ng-Cl1ent-Secret` })

  // private_key_jwt: accepted, replayed.
  const assertion = await clientAssertion(h)
  keep('client assertion', assertion)
  const svc = (await postForm(h, '/token', { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }, null)).json()
  keep('service access token', svc.access_token)
  await postForm(h, '/token', { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }, null)

  // Userinfo: header, form body, and a query parameter it does not accept.
  await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: `Bearer ${codeTokens.access_token}` } })
  await h.app.inject({ method: 'POST', url: '/userinfo', headers: FORM, payload: form({ access_token: codeTokens.access_token }) })
  await h.app.inject({ method: 'GET', url: `/userinfo?access_token=${codeTokens.access_token}` })
  await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: `Bearer ${codeTokens.access_token}x` } })

  // Introspection and revocation, with each token kind.
  for (const token of [codeTokens.access_token, codeTokens.refresh_token, codeTokens.id_token]) await postForm(h, '/introspect', { token }, WEB)
  await postForm(h, '/revoke', { token: rotated.refresh_token, token_type_hint: 'refresh_token' })
  await postForm(h, '/revoke', { token: codeTokens.access_token }, WEB)

  // Logout with the ID token in the query and the session cookie, and a refused one.
  await h.app.inject({ method: 'GET', url: `/logout?id_token_hint=${codeTokens.id_token}&post_logout_redirect_uri=http://127.0.0.1:3000/`, cookies: login.session })
  await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ id_token_hint: `${codeTokens.id_token}x` }), cookies: login.session })

  // Anything else, carrying every credential at once.
  await h.app.inject({ method: 'GET', url: '/healthz', headers: { authorization: `Bearer ${pw.access_token}`, cookie: `gh_session=${login.session.gh_session}` } })
  await h.app.inject({ method: 'GET', url: '/no-such-route?token=' + pw.refresh_token })

  const text = h.logs.text
  t.ok(h.logs.lines.length > 40, `${h.logs.lines.length} log lines`)
  t.ok(secrets.size >= 20, `${secrets.size} distinct secrets fed`)
  for (const [name, value] of secrets) {
    t.notOk(text.includes(value), `the log does not contain the ${name}`)
    // A JWT's signature alone is as telling as the token (and proves it was not logged split up).
    if (value.split('.').length === 3) t.notOk(text.includes(value.split('.')[2]!), `nor the signature of the ${name}`)
  }
  t.ok(h.logs.events('login.failed').length >= 2 && h.logs.events('refresh_token.reuse_detected').length === 1, 'the events are there, with identifiers')
  t.match(text, /id_token_hint=\[redacted\]/, 'query secrets are redacted in the request URL, the parameter name kept')
})
