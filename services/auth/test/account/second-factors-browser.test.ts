/**
 * Second factors in headless Chromium (Debian's `chromium`, driven by playwright-core), without
 * JavaScript and on a phone-sized screen: alice sets up an authenticator app from the account
 * page (reading the secret the page shows and computing the code with otpauth, as an app would),
 * makes recovery codes, signs out, signs in with her password and a code, then again with a
 * recovery code. Then a client with `require_mfa`: no code without a second factor, the second step
 * once there is one, single sign-on after it, `prompt=login` asking again, a recovery code
 * refused the second time. Screenshots of the second-step page, the account page with its
 * factors, the enrolment page and the "second factor required" page are saved to
 * .tap/screenshots/. If the browser cannot start, this test fails; it is never skipped.
 */
import { mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Secret, TOTP } from 'otpauth'
import { launchChromium } from '@gatehouse/test-harness'
import type { Page } from 'playwright-core'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'

const STEP_TIMEOUT_MS = 20_000
const SCREENSHOTS = fileURLToPath(new URL('../../../../.tap/screenshots/', import.meta.url))

async function password(page: Page, url: string): Promise<void> {
  await page.goto(url)
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Sign in' }).click()])
}

/** The code an authenticator app shows for `secret` at the app's clock (moved on to a fresh step first). */
function appCode(h: OidcApp, secret: string): string {
  h.clock.ms = (Math.floor(h.clock.now() / 30_000) + 1) * 30_000 + 1000
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: h.clock.now() })
}

t.test('alice sets up an authenticator app and recovery codes, then signs in with a code and with a recovery code', async (t) => {
  const h = await startOidcApp({ listen: true, env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const browser = await launchChromium({ timeoutMs: STEP_TIMEOUT_MS })
  t.teardown(() => browser.close())
  const phone = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } })
  const page = await phone.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  const consoleErrors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text())
  })

  await password(page, `${h.issuer}/account`)
  t.equal(await page.title(), 'Your account – Gatehouse')
  t.equal(await page.locator('#no-factors').count(), 1)

  // Set up the app: the QR code is an inline SVG; the secret is read off the page as a person would type it.
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click()
  t.equal(await page.title(), 'Set up an authenticator app – Gatehouse')
  const qr = page.locator('.qr svg')
  t.equal(await qr.count(), 1)
  const box = (await qr.boundingBox())!
  t.ok(box.width >= 150 && box.width <= 390, 'the QR code fits a phone screen and is large enough to scan')
  const secret = (await page.locator('#totp-secret').textContent())!.replace(/\s+/g, '')
  t.match(secret, /^[A-Z2-7]{32}$/)
  const secretBox = (await page.locator('#totp-secret').boundingBox())!
  t.ok(secretBox.x + secretBox.width <= 390, 'the secret wraps inside the screen')
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: `${SCREENSHOTS}totp-enrolment.png`, fullPage: true })
  await page.getByLabel('Code shown in the app').fill(appCode(h, secret))
  await Promise.all([page.waitForURL((u) => u.searchParams.get('notice') === 'totp-enrolled'), page.getByRole('button', { name: 'Turn on' }).click()])
  t.match(await page.locator('[role=status]').textContent(), /authenticator app is set up/)
  t.equal(await page.locator('li.factor-totp').count(), 1)

  await page.getByRole('button', { name: 'Generate recovery codes' }).click()
  t.equal(await page.title(), 'Your recovery codes – Gatehouse')
  const codes = (await page.locator('#recovery-codes li').allTextContents()).map((c) => c.trim())
  t.equal(codes.length, 10)
  await page.getByRole('link', { name: 'Back to your account' }).click()
  t.match(await page.locator('li.factor-recovery').textContent(), /10 of 10 left/)
  await page.screenshot({ path: `${SCREENSHOTS}account-second-factors.png`, fullPage: true })

  // Sign out everywhere, then in again: the password, then the code.
  await page.getByRole('button', { name: 'Sign out everywhere' }).click()
  await password(page, `${h.issuer}/account`)
  t.equal(await page.title(), 'Two-step verification – Gatehouse', 'the password alone is not enough')
  const codeField = page.getByLabel('Code from your authenticator app')
  t.equal(await codeField.getAttribute('inputmode'), 'numeric')
  t.equal(await codeField.getAttribute('autocomplete'), 'one-time-code')
  await page.screenshot({ path: `${SCREENSHOTS}second-step.png`, fullPage: true })
  await codeField.fill('000000' === appCode(h, secret) ? '111111' : '000000')
  await page.getByRole('button', { name: 'Verify' }).click()
  t.match(await page.locator('[role=alert]').textContent(), /not correct/, 'a wrong code: the page again')
  await page.getByLabel('Code from your authenticator app').fill(appCode(h, secret))
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'), page.getByRole('button', { name: 'Verify' }).click()])
  t.equal(await page.title(), 'Your account – Gatehouse')
  t.match(await page.locator('li.factor-totp').textContent(), /Last used/)

  // Again, with a recovery code: the <details> opens by keyboard, no script.
  await page.getByRole('button', { name: 'Sign out everywhere' }).click()
  await password(page, `${h.issuer}/account`)
  await page.locator('summary').focus()
  await page.keyboard.press('Enter')
  await page.getByLabel('Recovery code').fill(codes[0]!)
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'), page.getByRole('button', { name: 'Use recovery code' }).click()])
  t.match(await page.locator('li.factor-recovery').textContent(), /9 of 10 left/)
  t.same(consoleErrors.filter((m) => /content security policy|refused to/i.test(m)), [], 'the CSP blocks nothing the pages need')
  await phone.close()
})

t.test('a client with require_mfa: no code without a second factor, the second step once there is one; prompt=login asks again; a recovery code works once', async (t) => {
  // The client's callback: a server of its own, where the browser arrives with the code.
  const callback = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('callback'))
  await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => callback.close(() => resolve())))
  const REDIRECT = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`
  const strict = { client_id: 'strict', client_name: 'Strict app', client_secret: 'strict-secret', grant_types: ['authorization_code'], scope: 'openid profile', audience: 'api://resource', redirect_uris: [REDIRECT], require_mfa: true }
  const h = await startOidcApp({ listen: true, env: { LOGIN_DELAY_MS: '0' }, clients: [strict] })
  t.teardown(h.close)
  const browser = await launchChromium({ timeoutMs: STEP_TIMEOUT_MS })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ javaScriptEnabled: false })
  const page = await context.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  const authorize = (extra: Record<string, string> = {}) =>
    `${h.issuer}/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'strict', redirect_uri: REDIRECT, scope: 'openid', state: 's1', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra })}`

  // No second factor: the password is right, yet no code, and a way to set one up.
  await password(page, authorize())
  t.equal(await page.title(), 'Second factor required – Gatehouse')
  t.match(await page.locator('[role=alert]').textContent(), /Strict app requires a second factor/)
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: `${SCREENSHOTS}second-factor-required.png`, fullPage: true })
  await page.getByRole('link', { name: 'your account page' }).click()
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'), page.getByRole('button', { name: 'Sign in' }).click()])
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click()
  const secret = (await page.locator('#totp-secret').textContent())!.replace(/\s+/g, '')
  await page.getByLabel('Code shown in the app').fill(appCode(h, secret))
  await Promise.all([page.waitForURL((u) => u.searchParams.get('notice') === 'totp-enrolled'), page.getByRole('button', { name: 'Turn on' }).click()])
  await page.getByRole('button', { name: 'Generate recovery codes' }).click()
  const codes = (await page.locator('#recovery-codes li').allTextContents()).map((c) => c.trim())

  // The live session is password-only: the client asks again, and the second step follows.
  await password(page, authorize())
  t.equal(await page.title(), 'Two-step verification – Gatehouse', 'require_mfa forces the second step')
  await page.getByLabel('Code from your authenticator app').fill(appCode(h, secret))
  await Promise.all([page.waitForURL((u) => u.href.startsWith(REDIRECT)), page.getByRole('button', { name: 'Verify' }).click()])
  t.ok(new URL(page.url()).searchParams.get('code'), 'a code for the client')

  // The session now meets the client: answered at once; prompt=login shows the login form all the same.
  await page.goto(authorize())
  t.ok(page.url().startsWith(REDIRECT), 'single sign-on')
  await page.goto(authorize({ prompt: 'login' }))
  t.equal(await page.title(), 'Sign in – Gatehouse', 'prompt=login forces a fresh sign-in')

  // A recovery code signs in once; the same code again is refused.
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('summary').click()
  await page.getByLabel('Recovery code').fill(codes[0]!)
  await Promise.all([page.waitForURL((u) => u.href.startsWith(REDIRECT)), page.getByRole('button', { name: 'Use recovery code' }).click()])
  await password(page, authorize({ prompt: 'login' }))
  await page.locator('summary').click()
  await page.getByLabel('Recovery code').fill(codes[0]!)
  await page.getByRole('button', { name: 'Use recovery code' }).click()
  t.equal(await page.title(), 'Two-step verification – Gatehouse', 'a spent recovery code is refused')
  t.match(await page.locator('[role=alert]').first().textContent(), /not correct or has already been used/)
  await context.close()
})
