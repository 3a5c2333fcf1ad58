/**
 * Passkeys in headless Chromium (Debian's `chromium`, driven by playwright-core) with a virtual
 * authenticator (DevTools protocol WebAuthn domain: CTAP2, internal, resident keys, user
 * verification): alice signs in with her password at /account, adds a passkey, signs out
 * everywhere, then signs in to an application with the passkey alone through a real
 * authorization code flow, which openid-client completes. The issuer is http://localhost:<port>
 * (the server bound to 127.0.0.1): an IP address is not a valid RP ID. Screenshots of the login
 * page with its passkey button and of the account page with a passkey go to .tap/screenshots/.
 * If the browser cannot start, this test fails; it is never skipped.
 */
import { mkdirSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as oidc from 'openid-client'
import { launchChromium } from '@gatehouse/test-harness'
import { startOidcApp } from '../oidc/harness.js'

const STEP_TIMEOUT_MS = 20_000
const SCREENSHOTS = fileURLToPath(new URL('../../../../.tap/screenshots/', import.meta.url))

async function startCallbackServer(): Promise<{ server: Server; port: number; hits: URL[] }> {
  const hits: URL[] = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
    if (url.pathname === '/callback') hits.push(url)
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Callback</title><p>Signed in.</p>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, hits }
}

t.test('alice adds a passkey on the account page and signs in to an application with it alone', async (t) => {
  const rp = await startCallbackServer()
  t.teardown(() => new Promise<void>((resolve) => rp.server.close(() => resolve())))
  const redirectUri = `http://127.0.0.1:${rp.port}/callback`
  const h = await startOidcApp({
    listen: true,
    host: 'localhost',
    env: { LOGIN_DELAY_MS: '0' },
    clients: [{
      client_id: 'browser-rp', client_name: 'Browser test app', token_endpoint_auth_method: 'client_secret_basic', client_secret: 'browser-rp-secret',
      grant_types: ['authorization_code'], scope: 'openid profile', redirect_uris: [redirectUri],
    }],
  })
  t.teardown(h.close)
  t.match(h.issuer, /^http:\/\/localhost:\d+$/)

  const browser = await launchChromium({ timeoutMs: STEP_TIMEOUT_MS })
  t.teardown(() => browser.close())
  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  const consoleErrors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text())
  })
  const cdp = await context.newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  })

  // 1. Password sign-in at /account (a recent sign-in), then "Add a passkey".
  await page.goto(`${h.issuer}/account`)
  t.equal(await page.title(), 'Sign in – Gatehouse')
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'), page.getByRole('button', { name: 'Sign in', exact: true }).click()])
  t.equal(await page.title(), 'Your account – Gatehouse')
  t.equal(await page.locator('#no-passkeys').count(), 1, 'no passkey yet')
  const add = page.getByRole('button', { name: 'Add a passkey' })
  t.ok(await add.isVisible(), 'the glue script shows the passkey form (WebAuthn is there)')
  await Promise.all([page.waitForURL((u) => u.searchParams.get('notice') === 'passkey-added'), add.click()])
  t.match(await page.locator('[role=status]').textContent(), /Your passkey was added/)
  const items = page.locator('li.passkey-item')
  t.equal(await items.count(), 1)
  t.match(await items.first().locator('strong').textContent(), /^Passkey on Chrom(e|ium) on Linux$/)
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
  t.equal(credentials.length, 1, 'the authenticator holds one credential')
  t.equal(credentials[0]?.isResidentCredential, true, 'a discoverable one')
  const alice = (await h.deps.users.findByUsername('alice'))!
  const stored = (await h.deps.factors.list(alice.id)).filter((f) => f.kind === 'passkey')
  t.equal(stored.length, 1)
  const enrolled = (await h.deps.audit.search({ events: ['mfa.enrolled'], limit: 10 })).events
  t.match(enrolled, [{ userId: alice.id, details: { kind: 'passkey', factor_id: stored[0]!.id } }], 'audited mfa.enrolled: the kind and the factor id')
  t.notMatch(JSON.stringify(enrolled), stored[0]!.kind === 'passkey' ? stored[0]!.publicKey : 'x', 'never the key')
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: `${SCREENSHOTS}account-page-passkey.png`, fullPage: true })

  // 2. Sign out everywhere.
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign out everywhere' }).click()])
  t.notOk((await context.cookies(h.issuer)).some((c) => c.name === 'gh_session'), 'signed out')

  // 3. An application asks; alice signs in with the passkey alone.
  const config = await oidc.discovery(new URL(h.issuer), 'browser-rp', undefined, oidc.ClientSecretBasic('browser-rp-secret'), { execute: [oidc.allowInsecureRequests] })
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const authUrl = oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', nonce, state })
  await page.goto(authUrl.href)
  t.equal(await page.title(), 'Sign in – Gatehouse')
  const passkeyButton = page.getByRole('button', { name: 'Sign in with a passkey' })
  t.ok(await passkeyButton.isVisible(), 'the login page offers a passkey')
  await page.screenshot({ path: `${SCREENSHOTS}login-page-passkey.png`, fullPage: true })
  await Promise.all([page.waitForURL((u) => u.href.startsWith(redirectUri)), passkeyButton.click()])
  t.equal(rp.hits.length, 1, 'the callback was reached')
  const callback = rp.hits[0]!
  t.equal(callback.searchParams.get('state'), state)
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true })
  const claims = tokens.claims()!
  t.equal(claims.sub, alice.id, 'signed in as alice')
  const sessions = await h.deps.sessions.listByUser(alice.id)
  t.equal(sessions.length, 1)
  t.same(sessions[0]?.amr, ['hwk', 'user', 'mfa'], 'the login session: a device-bound passkey, user verified, no password')
  if (claims.amr !== undefined) t.same(claims.amr, ['hwk', 'user', 'mfa'], 'and the ID token says so')
  t.ok((await h.deps.factors.findPasskey(stored[0]!.kind === 'passkey' ? stored[0]!.credentialId : ''))?.lastUsedAt, 'the passkey\'s use is recorded')
  t.same(consoleErrors.filter((m) => /content security policy|refused to/i.test(m)), [], 'the CSP blocks nothing the pages need (the two scripts, the form posts, the redirect)')
  await context.close()
})
