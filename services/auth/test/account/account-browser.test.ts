/**
 * The account page in headless Chromium (Debian's `chromium`, driven by playwright-core), without
 * JavaScript: alice signs in at /account, signs out her other browser, changes her password, and
 * the page says so. A screenshot of the account page is saved to .tap/screenshots/. If the browser
 * cannot start, this test fails; it is never skipped.
 */
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { launchChromium } from '@gatehouse/test-harness'
import type { Page } from 'playwright-core'
import { startOidcApp } from '../oidc/harness.js'

const STEP_TIMEOUT_MS = 20_000
const SCREENSHOTS = fileURLToPath(new URL('../../../../.tap/screenshots/', import.meta.url))

async function signIn(page: Page, url: string): Promise<void> {
  await page.goto(url)
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('alice-password')
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'), page.getByRole('button', { name: 'Sign in' }).click()])
}

t.test('alice signs out her other browser and changes her password on the account page', async (t) => {
  const h = await startOidcApp({ listen: true, env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const browser = await launchChromium({ timeoutMs: STEP_TIMEOUT_MS })
  t.teardown(() => browser.close())
  const phone = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } })
  const other = await browser.newContext({ javaScriptEnabled: false })
  const page = await phone.newPage()
  const elsewhere = await other.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  elsewhere.setDefaultTimeout(STEP_TIMEOUT_MS)
  const consoleErrors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text())
  })

  await signIn(elsewhere, `${h.issuer}/account`)
  await page.goto(`${h.issuer}/account`)
  t.equal(await page.title(), 'Sign in – Gatehouse', 'not signed in: the login page first')
  await signIn(page, `${h.issuer}/account`)
  t.equal(await page.title(), 'Your account – Gatehouse')
  t.equal(await page.locator('#account-username').textContent(), 'alice')
  t.equal(await page.locator('li.session').count(), 2)
  t.equal(await page.locator('li.session').first().locator('.this-device').count(), 1, 'this device first, marked')

  const otherRow = page.locator('li.session', { hasNot: page.locator('.this-device') })
  await Promise.all([page.waitForURL((u) => u.searchParams.get('notice') === 'signed-out'), otherRow.getByRole('button', { name: /^Sign out/ }).click()])
  t.equal(await page.locator('li.session').count(), 1, 'the other browser is signed out')
  await elsewhere.reload()
  t.equal(await elsewhere.title(), 'Sign in – Gatehouse', 'the other browser has to sign in again')

  await page.getByLabel('Current password').fill('alice-password')
  await page.getByLabel('New password', { exact: true }).fill('alice-new-password')
  await page.getByLabel('New password again').fill('alice-new-password')
  await Promise.all([page.waitForURL((u) => u.searchParams.get('notice') === 'password-changed'), page.getByRole('button', { name: 'Change password' }).click()])
  t.match(await page.locator('[role=status]').textContent(), /Your password was changed/)
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: `${SCREENSHOTS}account-page.png`, fullPage: true })
  t.same(consoleErrors.filter((m) => /content security policy|refused to/i.test(m)), [], 'the CSP blocks nothing the page needs')
  await phone.close()
  await other.close()
})
