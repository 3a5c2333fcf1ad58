/**
 * Issue 12, finding 1, end to end with real processes (DESIGN §10.1): a private redis-server, the
 * built auth and resource services, headless Chromium signing in through the login page, and the
 * built `gatehouse` binary changing the password against the same Redis. Afterwards the old
 * session cookie gets the login page, every old refresh token is `invalid_grant`, and the old
 * access tokens are refused by the resource service (the revocation feed, DESIGN §6), and the
 * client is told by OIDC Back-Channel Logout: the CLI queues the logout in Redis and the running
 * service delivers a logout token that verifies against the JWKS.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { writeFileSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose'
import { CLI_SCRIPT, REPO_ROOT, basicAuth, eventually, getJson, launchChromium, postToken, runProcess, startStack } from '@gatehouse/test-harness'

const STEP_TIMEOUT_MS = 20_000
const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url')
const RP_AUTH = basicAuth('browser-rp', 'browser-rp-secret')

/** The relying party: its redirect URI (/callback) and its back-channel logout endpoint (/backchannel). */
async function startCallbackServer(): Promise<{ server: Server; port: number; hits: URL[]; logouts: { contentType: string; body: URLSearchParams }[] }> {
  const hits: URL[] = []
  const logouts: { contentType: string; body: URLSearchParams }[] = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
    if (req.method === 'POST' && url.pathname === '/backchannel') {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString('utf8')))
      req.on('end', () => {
        logouts.push({ contentType: req.headers['content-type'] ?? '', body: new URLSearchParams(body) })
        res.writeHead(200).end()
      })
      return
    }
    if (url.pathname === '/callback') hits.push(url)
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Callback</title><p>Signed in.</p>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, hits, logouts }
}

async function me(resource: string, accessToken: string): Promise<number> {
  return (await getJson(`${resource}/me`, accessToken)).status
}

t.test('a password change with the CLI ends the browser session, the refresh tokens and the access tokens', async (t) => {
  const rp = await startCallbackServer()
  t.teardown(() => new Promise<void>((resolve) => rp.server.close(() => resolve())))
  const redirectUri = `http://127.0.0.1:${rp.port}/callback`
  const dir = t.testdir({})
  const config = JSON.parse(readFileSync(`${REPO_ROOT}services/auth/config/dev.json`, 'utf8')) as { clients: unknown[] }
  config.clients.push({
    client_id: 'browser-rp', client_name: 'Browser test app', token_endpoint_auth_method: 'client_secret_basic', client_secret: 'browser-rp-secret',
    grant_types: ['authorization_code', 'refresh_token'], scope: 'openid profile documents:read', redirect_uris: [redirectUri],
    backchannel_logout_uri: `http://127.0.0.1:${rp.port}/backchannel`, backchannel_logout_session_required: true,
  })
  writeFileSync(`${dir}/auth.json`, JSON.stringify(config))
  writeFileSync(`${dir}/new-password`, 'a-brand-new-password\n')

  const { redis, issuer, resource } = await startStack(t, { auth: { AUTH_CONFIG_FILE: `${dir}/auth.json` } })

  const browser = await launchChromium({ timeoutMs: STEP_TIMEOUT_MS })
  t.teardown(() => browser.close())
  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  const authorizeUrl = (state: string) =>
    `${issuer}/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'browser-rp', redirect_uri: redirectUri, scope: 'openid profile documents:read', state, code_challenge: CHALLENGE, code_challenge_method: 'S256' })}`
  const exchange = async (code: string) => await postToken(issuer, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: VERIFIER }, RP_AUTH)

  // Sign in through the real login page.
  await page.goto(authorizeUrl('first'))
  t.equal(await page.title(), 'Sign in – Gatehouse')
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForURL((u) => u.href.startsWith(redirectUri)), page.getByRole('button', { name: 'Sign in' }).click()])
  const first = await exchange(rp.hits[0]!.searchParams.get('code')!)
  t.equal(first.status, 200)
  // A second code from the same session (SSO, no form): a second family.
  await page.goto(authorizeUrl('second'))
  await page.waitForURL((u) => u.href.startsWith(redirectUri))
  t.equal(rp.hits.length, 2)
  const second = await exchange(rp.hits[1]!.searchParams.get('code')!)
  t.equal(second.status, 200)
  const oldCookie = (await context.cookies(issuer)).find((c) => c.name === 'gh_session')
  t.ok(oldCookie, 'the browser holds the session cookie')
  for (const tokens of [first, second]) t.equal(await me(resource.url, tokens.body.access_token!), 200)

  // The operator changes the password with the built binary, on the same Redis.
  const changed = await runProcess([CLI_SCRIPT, 'users', 'set-password', 'alice', '--password-file', `${dir}/new-password`, '--json'], { REDIS_URL: redis.url, GATEHOUSE_ACTOR: 'e2e' })
  t.equal(changed.code, 0, changed.stderr)
  const out = JSON.parse(changed.stdout) as { ended_sessions: string[]; revoked_families: string[] }
  t.equal(out.ended_sessions.length, 1)
  t.equal(out.revoked_families.length, 2)

  // The old access tokens are refused by the resource service well before they expire (900 s).
  for (const tokens of [first, second]) {
    t.equal(await eventually('the revocation to reach the resource service', () => me(resource.url, tokens.body.access_token!), (s) => s === 401, 1500), 401)
  }
  // Every old refresh token is invalid_grant.
  for (const tokens of [first, second]) {
    const r = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token! }, RP_AUTH)
    t.equal(r.status, 400)
    t.equal(r.body.error, 'invalid_grant')
  }
  // The client is told (OIDC Back-Channel Logout 1.0 §2.4–2.5): the CLI queued it, the service delivered it.
  await eventually('the back-channel logout to reach the client', async () => rp.logouts.length, (n) => n >= 1, 10_000)
  t.equal(rp.logouts.length, 1, 'one logout token for the one session')
  t.match(rp.logouts[0]!.contentType, /^application\/x-www-form-urlencoded/)
  const logoutToken = rp.logouts[0]!.body.get('logout_token')!
  const { payload, protectedHeader } = await jwtVerify(logoutToken, createRemoteJWKSet(new URL(`${issuer}/jwks.json`)), { issuer, audience: 'browser-rp', typ: 'logout+jwt', maxTokenAge: 120 })
  t.equal(protectedHeader.alg, 'RS256')
  const sid = decodeJwt(first.body.id_token!).sid
  t.ok(typeof sid === 'string' && sid.length > 0, 'the ID token names its session')
  t.equal(payload.sid, sid, 'the logout token names the ended session')
  t.equal(payload.sub, decodeJwt(first.body.id_token!).sub)
  t.same(payload.events, { 'http://schemas.openid.net/event/backchannel-logout': {} })
  t.notOk('nonce' in payload, 'a logout token never carries a nonce')
  t.ok(typeof payload.jti === 'string' && payload.exp! - payload.iat! <= 120)
  // The old session cookie (still in the browser) gets the login page, not a code.
  t.equal((await context.cookies(issuer)).find((c) => c.name === 'gh_session')?.value, oldCookie!.value, 'the browser still sends the old cookie')
  const response = await page.goto(authorizeUrl('third'))
  t.equal(response?.status(), 200)
  t.equal(await page.title(), 'Sign in – Gatehouse')
  t.equal(rp.hits.length, 2, 'no new code reached the client')
  // The old password no longer works; the new one does.
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign in' }).click()])
  t.equal(await page.getByRole('alert').textContent(), 'The username or password is not correct.')
  await page.getByLabel('Password').fill('a-brand-new-password')
  await Promise.all([page.waitForURL((u) => u.href.startsWith(redirectUri)), page.getByRole('button', { name: 'Sign in' }).click()])
  t.equal(rp.hits.length, 3)
  await context.close()
})
