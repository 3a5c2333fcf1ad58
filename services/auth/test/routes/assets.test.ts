/**
 * The passkey pages' scripts (routes/assets.ts): served as JavaScript, never sniffed, read once
 * at start; and which pages load them (only those with a WebAuthn ceremony, whose CSP then allows
 * `script-src 'self'`, never inline script).
 */
import t from 'tap'
import { startOidcApp } from '../oidc/harness.js'
import { s256 } from '../../src/authorize/pkce.js'

function authorizeQuery(): string {
  return new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: 'http://127.0.0.1:3000/callback', scope: 'openid', state: 's', code_challenge: s256('dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'), code_challenge_method: 'S256' }).toString()
}

t.test('the two scripts are served as JavaScript', async (t) => {
  const h = await startOidcApp({ env: { ISSUER: 'http://localhost:4000' } })
  t.teardown(h.close)
  const bundle = await h.app.inject({ method: 'GET', url: '/assets/simplewebauthn-browser.js' })
  t.equal(bundle.statusCode, 200)
  t.equal(bundle.headers['content-type'], 'text/javascript; charset=utf-8')
  t.equal(bundle.headers['x-content-type-options'], 'nosniff')
  t.match(bundle.body, /SimpleWebAuthnBrowser/, '@simplewebauthn/browser\'s UMD bundle')
  const glue = await h.app.inject({ method: 'GET', url: '/assets/passkeys.js' })
  t.equal(glue.statusCode, 200)
  t.match(glue.body, /form\[data-passkey\]/)
  t.equal((await h.app.inject({ method: 'GET', url: '/assets/../package.json' })).statusCode, 404)
  t.equal((await h.app.inject({ method: 'GET', url: '/assets/other.js' })).statusCode, 404)
})

t.test('only a page with a ceremony loads them and allows script-src \'self\'', async (t) => {
  const h = await startOidcApp({ env: { ISSUER: 'http://localhost:4000' } })
  t.teardown(h.close)
  const login = await h.app.inject({ method: 'GET', url: `/authorize?${authorizeQuery()}` })
  t.equal(login.statusCode, 200)
  const csp = String(login.headers['content-security-policy'])
  t.match(csp, /^default-src 'none'; style-src 'nonce-[^']+'; script-src 'self'; form-action /)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/)
  t.match(login.body, /<script src="\/assets\/simplewebauthn-browser\.js"><\/script><script src="\/assets\/passkeys\.js"><\/script><\/body>/)
  t.notMatch(login.body, /<script>/, 'no inline script')
  t.match(login.body, /<form method="post" action="\/login\/passkey" id="passkey-login-form" class="passkey" data-passkey="authenticate" data-options="\{&quot;/, 'the options in an escaped data attribute')
  t.match(login.body, /<form method="post" action="login">/, 'the password form as before')
  const error = await h.app.inject({ method: 'GET', url: '/authorize?client_id=nobody' })
  t.notMatch(String(error.headers['content-security-policy']), /script-src/, 'an error page allows no script')
})
