import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import type { LoginSession } from '../signin/sessions.js'
import { html, sendPage, type Html } from '../http/html.js'
import { clearPendingForm, dropOldestPendingForms, issuerPath, readPendingForm, startPendingForm, type PendingForm, type PendingFormCheck } from '../signin/browser.js'
import type { Factor } from '../mfa/factors.js'
import { groupedSecret } from '../mfa/totp.js'

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
  /**
   * The authenticator-app enrolment's pending secret (its form only), sealed (mfa/secret-seal.ts,
   * bound to the user id): the factor exists only once a first code of it is confirmed.
   */
  totp?: string
}

const ACCOUNT_FORM: PendingForm = { prefix: 'gh_account_', path: (config: AuthConfig) => `${issuerPath(config)}/account`, ttlMs: ACCOUNT_FORM_TTL_MS }

export function accountPageUrl(config: AuthConfig, notice?: AccountNotice): string {
  const base = `${config.issuer}/account`
  return notice === undefined ? base : `${base}?${new URLSearchParams({ notice })}`
}

/**
 * Where one of the page's forms posts: absolute, since the page is also the answer to a form's
 * POST (/account/password with an error), where a relative "account/..." would resolve to
 * /account/account/...
 */
function formAction(config: AuthConfig, path: string): string {
  return `${config.issuer}/account/${path}`
}

export function startAccountForm(reply: FastifyReply, deps: AuthDeps, pending: PendingAccountForm): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, ACCOUNT_FORM, pending, () => dropOldestPendingForms(reply, deps, ACCOUNT_FORM, MAX_PENDING_ACCOUNT_FORMS))
}

export function readAccountForm(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<PendingAccountForm> {
  return readPendingForm<PendingAccountForm>(request, deps, ACCOUNT_FORM, id, csrf, (p) => typeof p.sid === 'string' && (p.totp === undefined || typeof p.totp === 'string'))
}

/** Clears one pending account form (an enrolment once confirmed: its sealed secret is not kept longer than needed). */
export function clearAccountForm(reply: FastifyReply, config: AuthConfig, id: string): void {
  clearPendingForm(reply, config, ACCOUNT_FORM, id)
}

/** What the page says after a form's redirect (only these words: nothing from the query is shown). */
export const NOTICES = {
  'signed-out': 'The session was signed out.',
  'password-changed': 'Your password was changed. Your other sessions were signed out.',
  'totp-enrolled': 'Your authenticator app is set up. Signing in will ask for a code from it. Your other sessions were signed out.',
  'factor-removed': 'The second factor was removed.',
  'passkey-added': 'Your passkey was added. You can sign in with it now. Your other sessions were signed out.',
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
  /** The user's second factors (mfa/factors.ts), oldest first. */
  factors: readonly Factor[]
  /** An error of the second factors' forms. */
  factorError?: string
  /** The passkeys' part of the "Second factors" section (mfa/passkeys.ts accountPasskeysMarkup) and the scripts its ceremony needs. */
  passkeys?: { markup: Html; scripts?: readonly string[] }
}

const KIND_NAMES = { totp: 'Authenticator app', passkey: 'Passkey', recovery: 'Recovery codes' } as const

/** The "Second factors" section: each factor (kind, label, added, last used; codes left) with its remove form, then what can be added. */
function factorsSection(input: AccountPageInput, hidden: Html, config: AuthConfig): Html {
  // Passkeys have their own list and forms (mfa/passkeys.ts accountPasskeysMarkup), placed below.
  const items = input.factors.filter((f) => f.kind !== 'passkey').map((f) => {
    const kind = KIND_NAMES[f.kind]
    const label = f.label !== '' && f.label !== kind && html` <span class="factor-label">(${f.label})</span>`
    const left = f.kind === 'recovery' && html`<br><span class="codes-left">${String(f.codeHashes.length)} of ${String(f.total)} left</span>`
    const used = f.lastUsedAt === undefined ? 'Never used' : `Last used ${when(f.lastUsedAt)}`
    return html`<li class="factor factor-${f.kind}" id="factor-${f.id}"><strong>${kind}</strong>${label}${left}<br>Added ${when(f.createdAt)}<br>${used}<form method="post" action="${formAction(config, 'factors/remove')}">${hidden}<input type="hidden" name="factor" value="${f.id}"><button type="submit" aria-label="Remove ${kind}${f.label !== '' && f.label !== kind ? ` (${f.label})` : ''}">Remove</button></form></li>`.html
  })
  const list = input.factors.length === 0 ? html`<p id="no-factors">None yet: signing in needs your password only.</p>` : items.length === 0 ? html`` : html`<ul id="factors" class="sessions">${{ html: items.join('') }}</ul>`
  const error = input.factorError !== undefined && html`<p class="error" role="alert" id="factor-error">${input.factorError}</p>`
  const hasTotp = input.factors.some((f) => f.kind === 'totp')
  const hasRecovery = input.factors.some((f) => f.kind === 'recovery')
  const totp = !hasTotp && html`<form method="post" action="${formAction(config, 'totp/start')}">${hidden}<button type="submit">Set up an authenticator app</button></form>`
  const recovery = html`<form method="post" action="${formAction(config, 'recovery-codes')}">${hidden}<button type="submit">${hasRecovery ? 'Replace recovery codes' : 'Generate recovery codes'}</button></form>${hasRecovery && html`<p>New codes replace the old ones.</p>`}`
  return html`<section aria-labelledby="factors-heading" id="second-factors"><h2 id="factors-heading">Second factors</h2>${error}${list}${totp}${recovery}${input.passkeys?.markup}</section>`
}

/** What the authenticator-app enrolment page shows (answer to POST /account/totp/start). */
export interface TotpEnrolmentInput {
  /** The enrolment's own pending form (it holds the sealed secret). */
  form: string
  csrf: string
  /** The base32 secret, shown in groups for typing by hand. */
  secret: string
  /** The QR code of its otpauth:// URI, an inline SVG (mfa/totp.ts totpQrSvg). */
  qrSvg: string
  error?: string
}

export const TOTP_ENROLMENT_TITLE = 'Set up an authenticator app'

/**
 * The enrolment: the QR code, the secret for manual entry, and the field for a first code. The
 * factor exists only once that code is confirmed (POST /account/totp/confirm).
 */
export function sendTotpEnrolmentPage(reply: FastifyReply, status: number, config: AuthConfig, input: TotpEnrolmentInput): FastifyReply {
  const error = input.error !== undefined && html`<p class="error" role="alert" id="code-error">${input.error}</p>`
  const described = input.error !== undefined ? { html: ' aria-describedby="code-error" aria-invalid="true"' } : { html: '' }
  const groups = groupedSecret(input.secret)
  const body = html`<p>Scan this QR code with your authenticator app (for example Google Authenticator, Microsoft Authenticator, 1Password or Aegis).</p><div class="qr" role="img" aria-label="QR code for your authenticator app">${{ html: input.qrSvg }}</div><p>Or enter this key in the app by hand (time-based):</p><p class="secret" id="totp-secret">${groups}</p>${error}<form method="post" action="${formAction(config, 'totp/confirm')}"><input type="hidden" name="form" value="${input.form}"><input type="hidden" name="csrf" value="${input.csrf}"><label for="code">Code shown in the app</label><input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="9"${described}><button type="submit">Turn on</button></form><p><a href="${accountPageUrl(config)}">Cancel</a></p>`
  return sendPage(reply, { status, title: TOTP_ENROLMENT_TITLE, body })
}

export const RECOVERY_CODES_TITLE = 'Your recovery codes'

/** New recovery codes, shown this once (only their digests are kept). */
export function sendRecoveryCodesPage(reply: FastifyReply, config: AuthConfig, codes: readonly string[]): FastifyReply {
  const items: Html = { html: codes.map((c) => html`<li class="code">${c}</li>`.html).join('') }
  const body = html`<p role="status" class="notice">Write these ${String(codes.length)} codes down or keep them in a password manager now: they are not shown again. Each one signs you in once if you lose your authenticator app. Any codes you had before no longer work.</p><ol id="recovery-codes" class="recovery-codes">${items}</ol><p><a href="${accountPageUrl(config)}">Back to your account</a></p>`
  return sendPage(reply, { status: 200, title: RECOVERY_CODES_TITLE, body })
}

/**
 * The page: who is signed in, the live login sessions (this one first and marked), a sign-out
 * form for each and for all, the password form, and the second factors (listed, removed, and
 * added: an authenticator app, recovery codes). Form actions are absolute URLs under the issuer
 * (formAction).
 */
export function sendAccountPage(reply: FastifyReply, status: number, config: AuthConfig, input: AccountPageInput): FastifyReply {
  const hidden = html`<input type="hidden" name="form" value="${input.form}"><input type="hidden" name="csrf" value="${input.csrf}">`
  const sessions = [...input.sessions].sort((a, b) => (a.id === input.current.id ? -1 : b.id === input.current.id ? 1 : b.lastUsedAt - a.lastUsedAt))
  const rows: Html = {
    html: sessions
      .map((s) => {
        const mine = s.id === input.current.id
        const label = `Sign out ${deviceName(s.userAgent)}${mine ? ' (this device)' : ''}`
        return html`<li class="session" id="session-${s.id}"><strong>${deviceName(s.userAgent)}</strong>${mine && html` <span class="this-device">(this device)</span>`}<br>${s.address ?? 'unknown address'}<br>Signed in ${when(s.createdAt)}<br>Last used ${when(s.lastUsedAt)}<form method="post" action="${formAction(config, 'sessions/end')}">${hidden}<input type="hidden" name="session" value="${s.id}"><button type="submit" aria-label="${label}">Sign out</button></form></li>`.html
      })
      .join(''),
  }
  const notice = input.notice !== undefined && html`<p role="status" class="notice">${NOTICES[input.notice]}</p>`
  const pwError = input.passwordError !== undefined && html`<p class="error" role="alert" id="password-error">${input.passwordError}</p>`
  const described = input.passwordError !== undefined ? { html: ' aria-describedby="password-error" aria-invalid="true"' } : { html: '' }
  const email = input.user.email !== undefined && html`<br>${input.user.email}`
  const name = typeof input.user.claims?.name === 'string' ? html`<strong id="account-name">${input.user.claims.name}</strong><br>` : html``
  const body = html`${notice}<section aria-labelledby="who"><h2 id="who">Signed in as</h2><p>${name}<span id="account-username">${input.user.username}</span>${email}</p></section><section aria-labelledby="sessions-heading"><h2 id="sessions-heading">Where you are signed in</h2><ul id="sessions" class="sessions">${rows}</ul><form method="post" action="${formAction(config, 'sessions/end-all')}">${hidden}<button type="submit">Sign out everywhere</button></form></section><section aria-labelledby="password-heading"><h2 id="password-heading">Change password</h2>${pwError}<form method="post" action="${formAction(config, 'password')}">${hidden}<label for="current_password">Current password</label><input id="current_password" name="current_password" type="password" autocomplete="current-password" required maxlength="1024"${described}><label for="new_password">New password</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"><label for="new_password_again">New password again</label><input id="new_password_again" name="new_password_again" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"><button type="submit">Change password</button></form></section>${factorsSection(input, hidden, config)}`
  const scripts = input.passkeys?.scripts
  return sendPage(reply, { status, title: ACCOUNT_PAGE_NAME, body, ...(scripts === undefined ? {} : { scripts }) })
}
