import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import type { LoginSession } from '../signin/sessions.js'
import { html, sendPage, type Html } from '../http/html.js'
import { dropOldestPendingForms, issuerPath, readPendingForm, startPendingForm, type PendingForm, type PendingFormCheck } from '../signin/browser.js'

/**
 * The account page's forms and markup (DESIGN §10.5; routes/account.ts handles the requests).
 * Every form on the page is one pending form as the device page's are (signin/browser.ts): a
 * signed, short-lived, SameSite=Lax cookie holds a double-submit CSRF token that each form
 * repeats, and the login session the page was shown to, so a form posted from another sign-in
 * (or another site) is refused.
 */
export const ACCOUNT_PAGE_NAME = 'Your account'
export const ACCOUNT_FORM_TTL_MS = 30 * 60_000
/** Account pages one browser holds open at most (one cookie each). */
export const MAX_PENDING_ACCOUNT_FORMS = 3

/** What an account page's forms are bound to: the login session it was shown to. */
export interface PendingAccountForm {
  sid: string
}

const ACCOUNT_FORM: PendingForm = { prefix: 'gh_account_', path: (config: AuthConfig) => `${issuerPath(config)}/account`, ttlMs: ACCOUNT_FORM_TTL_MS }

export function accountPageUrl(config: AuthConfig, notice?: AccountNotice): string {
  const base = `${config.issuer}/account`
  return notice === undefined ? base : `${base}?${new URLSearchParams({ notice })}`
}

export function startAccountForm(reply: FastifyReply, deps: AuthDeps, pending: PendingAccountForm): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, ACCOUNT_FORM, pending, () => dropOldestPendingForms(reply, deps, ACCOUNT_FORM, MAX_PENDING_ACCOUNT_FORMS))
}

export function readAccountForm(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<PendingAccountForm> {
  return readPendingForm<PendingAccountForm>(request, deps, ACCOUNT_FORM, id, csrf, (p) => typeof p.sid === 'string')
}

/** What the page says after a form's redirect (only these words: nothing from the query is shown). */
export const NOTICES = {
  'signed-out': 'The session was signed out.',
  'password-changed': 'Your password was changed. Your other sessions were signed out.',
  'passkey-added': 'Your passkey was added. You can sign in with it now.',
  'passkey-removed': 'The passkey was removed.',
  'passkey-failed': 'No passkey was added: the browser\'s answer could not be verified or has expired. Try again.',
  'passkey-exists': 'That passkey is already registered.',
} as const
export type AccountNotice = keyof typeof NOTICES

/** A short, human name of a browser from its User-Agent (never shown raw beyond 200 characters). */
export function deviceName(userAgent: string | undefined): string {
  if (userAgent === undefined || userAgent === '') return 'Unknown device'
  const ua = userAgent
  const browser = /Edg\//.test(ua) ? 'Edge' : /OPR\//.test(ua) ? 'Opera' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : undefined
  const os = /iPhone|iPad/.test(ua) ? 'iOS' : /Android/.test(ua) ? 'Android' : /Windows/.test(ua) ? 'Windows' : /Mac OS X|Macintosh/.test(ua) ? 'macOS' : /CrOS/.test(ua) ? 'ChromeOS' : /Linux/.test(ua) ? 'Linux' : undefined
  if (browser !== undefined && os !== undefined) return `${browser} on ${os}`
  if (browser !== undefined || os !== undefined) return (browser ?? os)!
  return ua.slice(0, 60)
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
}

export interface AccountPageInput {
  form: string
  csrf: string
  user: User
  current: LoginSession
  sessions: readonly LoginSession[]
  notice?: AccountNotice
  /** The password form's error (its fields are never echoed back). */
  passwordError?: string
  /** The passkeys' part of the "Second factors" section (mfa/passkeys.ts accountPasskeysMarkup) and the scripts its ceremony needs. */
  passkeys?: { markup: Html; scripts?: readonly string[] }
}

/**
 * The page: who is signed in, the live login sessions (this one first and marked), a sign-out
 * form for each and for all, the password form, and the place for second factors. Relative form
 * actions: the page is served at <issuer>/account, so "account/..." is under the issuer even
 * behind a proxy with a path.
 */
export function sendAccountPage(reply: FastifyReply, status: number, input: AccountPageInput): FastifyReply {
  const hidden = html`<input type="hidden" name="form" value="${input.form}"><input type="hidden" name="csrf" value="${input.csrf}">`
  const sessions = [...input.sessions].sort((a, b) => (a.id === input.current.id ? -1 : b.id === input.current.id ? 1 : b.lastUsedAt - a.lastUsedAt))
  const rows: Html = {
    html: sessions
      .map((s) => {
        const mine = s.id === input.current.id
        const label = `Sign out ${deviceName(s.userAgent)}${mine ? ' (this device)' : ''}`
        return html`<li class="session" id="session-${s.id}"><strong>${deviceName(s.userAgent)}</strong>${mine && html` <span class="this-device">(this device)</span>`}<br>${s.address ?? 'unknown address'}<br>Signed in ${when(s.createdAt)}<br>Last used ${when(s.lastUsedAt)}<form method="post" action="account/sessions/end">${hidden}<input type="hidden" name="session" value="${s.id}"><button type="submit" aria-label="${label}">Sign out</button></form></li>`.html
      })
      .join(''),
  }
  const notice = input.notice !== undefined && html`<p role="status" class="notice">${NOTICES[input.notice]}</p>`
  const pwError = input.passwordError !== undefined && html`<p class="error" role="alert" id="password-error">${input.passwordError}</p>`
  const described = input.passwordError !== undefined ? { html: ' aria-describedby="password-error" aria-invalid="true"' } : { html: '' }
  const email = input.user.email !== undefined && html`<br>${input.user.email}`
  const name = typeof input.user.claims?.name === 'string' ? html`<strong id="account-name">${input.user.claims.name}</strong><br>` : html``
  const body = html`${notice}<section aria-labelledby="who"><h2 id="who">Signed in as</h2><p>${name}<span id="account-username">${input.user.username}</span>${email}</p></section><section aria-labelledby="sessions-heading"><h2 id="sessions-heading">Where you are signed in</h2><ul id="sessions" class="sessions">${rows}</ul><form method="post" action="account/sessions/end-all">${hidden}<button type="submit">Sign out everywhere</button></form></section><section aria-labelledby="password-heading"><h2 id="password-heading">Change password</h2>${pwError}<form method="post" action="account/password">${hidden}<label for="current_password">Current password</label><input id="current_password" name="current_password" type="password" autocomplete="current-password" required maxlength="1024"${described}><label for="new_password">New password</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"><label for="new_password_again">New password again</label><input id="new_password_again" name="new_password_again" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"><button type="submit">Change password</button></form></section><section aria-labelledby="factors-heading" id="second-factors"><h2 id="factors-heading">Second factors</h2>${input.passkeys?.markup}</section>`
  const scripts = input.passkeys?.scripts
  return sendPage(reply, { status, title: ACCOUNT_PAGE_NAME, body, ...(scripts === undefined ? {} : { scripts }) })
}
