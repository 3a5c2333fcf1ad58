/**
 * Second factors over HTTP, in process (app.inject): a browser that enrols an authenticator app
 * or recovery codes on the account page, and signs in through the password and the second step.
 * The clock is the app's ManualClock; codes are computed with otpauth (mfa/totp.ts totpCode).
 */
import type { Test } from 'tap'
import { totpCode } from '../../src/mfa/totp.js'
import type { OidcApp } from '../oidc/harness.js'
import { startResourceApp } from '../oidc/resource-fixture.js'
import { DeviceBrowser, field, type Page } from '../device/device-harness.js'

export { DeviceBrowser, field, type Page }

export async function mfaApp(t: Test, env: Record<string, string> = {}): Promise<OidcApp> {
  const h = await startResourceApp({ env: { LOGIN_DELAY_MS: '0', ...env } })
  t.teardown(h.close)
  return h
}

export function formFields(page: Page): { form: string; csrf: string } {
  return { form: field(page.html, 'form'), csrf: field(page.html, 'csrf') }
}

/** The base32 secret the enrolment page shows (in groups). */
export function secretOf(page: Page): string {
  const m = /id="totp-secret">([A-Z2-7 ]+)</.exec(page.html)
  if (m === null) throw new Error(`no secret on the page: ${page.html.slice(0, 300)}`)
  return m[1]!.replace(/ /g, '')
}

/** A browser signed in at /account with the password alone (no second factor yet). */
export async function signedIn(h: OidcApp, username = 'alice', address = '127.0.0.1'): Promise<DeviceBrowser> {
  const b = new DeviceBrowser(h, address)
  const back = await b.signIn('/account', username, `${username}-password`)
  if (back.status !== 303) throw new Error(`sign-in answered ${back.status}`)
  return b
}

/** POST /account/totp/start from a fresh account page: the enrolment page. */
export async function startTotp(b: DeviceBrowser): Promise<Page> {
  return await b.post('/account/totp/start', formFields(await b.get('/account')))
}

/** Enrols an authenticator app from the account page; returns its secret (the confirming code spends the clock's step). */
export async function enrolTotp(h: OidcApp, b: DeviceBrowser): Promise<string> {
  const page = await startTotp(b)
  if (page.status !== 200) throw new Error(`enrolment page answered ${page.status}`)
  const secret = secretOf(page)
  const done = await b.post('/account/totp/confirm', { ...formFields(page), code: totpCode(secret, h.clock.now()) })
  if (done.status !== 303) throw new Error(`confirmation answered ${done.status}: ${done.html.slice(0, 300)}`)
  return secret
}

/** Generates recovery codes on the account page; returns them as shown. */
export async function generateCodes(b: DeviceBrowser): Promise<string[]> {
  const page = await b.post('/account/recovery-codes', formFields(await b.get('/account')))
  if (page.status !== 200) throw new Error(`recovery codes answered ${page.status}`)
  return [...page.html.matchAll(/<li class="code">([^<]+)<\/li>/g)].map((m) => m[1]!)
}

/** A new browser at /account, through the password: the page that follows (the second step's, for a user with a factor). */
export async function passwordStep(h: OidcApp, username = 'alice', address = '127.0.0.1', password = `${username}-password`): Promise<{ browser: DeviceBrowser; page: Page }> {
  const browser = new DeviceBrowser(h, address)
  const page = await browser.signIn('/account', username, password)
  return { browser, page }
}

export function stepFields(page: Page): { step: string; csrf: string } {
  return { step: field(page.html, 'step'), csrf: field(page.html, 'csrf') }
}

/** Posts a TOTP code (or other fields) on a second-step page. */
export async function answer(browser: DeviceBrowser, page: Page, fields: Record<string, string>): Promise<Page> {
  return await browser.post('/login/second-factor', { ...stepFields(page), ...fields })
}

/** Moves the clock to the start of the next TOTP step (plus a second), so the next code differs. */
export function nextStep(h: OidcApp): void {
  const now = h.clock.now()
  h.clock.ms = (Math.floor(now / 30_000) + 1) * 30_000 + 1000
}
