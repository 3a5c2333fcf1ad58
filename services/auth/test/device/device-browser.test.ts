/**
 * The device flow end to end, as RFC 8628 §3 draws it: a device (openid-client v6) starts the
 * flow and polls, while a user in headless Chromium (Debian's `chromium`, driven by
 * playwright-core) opens verification_uri_complete, signs in on the login page, checks the
 * pre-filled code, sees the client and its scopes, and allows it. A screenshot of the
 * confirmation page is saved to .tap/screenshots/. If the browser cannot start, this test fails;
 * it is never skipped.
 */
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as oidc from 'openid-client'
import { launchChromium } from '@gatehouse/test-harness'
import { startOidcApp } from '../oidc/harness.js'

const STEP_TIMEOUT_MS = 20_000
const SCREENSHOTS = fileURLToPath(new URL('../../../../.tap/screenshots/', import.meta.url))

t.test('a device polls with openid-client while the user allows it in Chromium', async (t) => {
  // A 1 s interval keeps the test short; openid-client waits it before every poll.
  const h = await startOidcApp({ listen: true, env: { DEVICE_POLL_INTERVAL: '1' } })
  t.teardown(h.close)

  const config = await oidc.discovery(new URL(h.issuer), 'cli-device', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] })
  t.equal(config.serverMetadata().device_authorization_endpoint, `${h.issuer}/device_authorization`)
  const started = await oidc.initiateDeviceAuthorization(config, { scope: 'openid profile documents:read' })
  t.equal(started.interval, 1)
  t.ok(started.verification_uri_complete)
  const controller = new AbortController()
  t.teardown(() => controller.abort())
  const polling = oidc.pollDeviceAuthorizationGrant(config, started, undefined, { signal: controller.signal })
  polling.catch(() => undefined) // awaited below; never an unhandled rejection meanwhile

  const browser = await launchChromium({ timeoutMs: STEP_TIMEOUT_MS })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ javaScriptEnabled: false }) // the page needs none
  const page = await context.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  const consoleErrors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text())
  })

  await page.goto(started.verification_uri_complete!)
  t.equal(await page.title(), 'Sign in – Gatehouse', 'not signed in: the login page first')
  t.equal(await page.locator('main strong').textContent(), 'Connect a device')
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForURL((u) => u.pathname === '/device'), page.getByRole('button', { name: 'Sign in' }).click()])
  t.equal(await page.title(), 'Connect a device – Gatehouse', 'back on the verification page')
  t.equal(await page.getByLabel('Code').inputValue(), started.user_code, 'the code from verification_uri_complete, pre-filled')

  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Continue' }).click()])
  t.equal(await page.title(), 'Allow access? – Gatehouse')
  t.equal(await page.locator('#client-name').textContent(), 'Gatehouse demo CLI (public client, device sign-in)')
  t.equal(await page.locator('#user-code').textContent(), started.user_code)
  t.same(await page.locator('#scopes li').allTextContents(), ['openid', 'profile', 'documents:read'])
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: `${SCREENSHOTS}device-verification.png`, fullPage: true })

  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Allow' }).click()])
  t.equal(await page.title(), 'Device connected – Gatehouse')
  t.same(consoleErrors.filter((m) => /content security policy|refused to/i.test(m)), [], 'the CSP blocks nothing the page needs')

  const tokens = await polling
  t.equal(tokens.token_type.toLowerCase(), 'bearer')
  t.ok(tokens.refresh_token)
  t.equal(tokens.claims()?.aud, 'cli-device', 'an ID token for the device client')
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub)
  t.equal(userinfo.name, 'Alice Liddell')
  await context.close()
})
