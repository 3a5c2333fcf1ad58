import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import { html, sendPage, type Html } from '../http/html.js'
import { dropOldestPendingForms, issuerPath, readPendingForm, startPendingForm, clearPendingForm, type PendingForm, type PendingFormCheck } from '../signin/browser.js'
import { splitScope } from '../tokens/scope.js'
import { formatUserCode } from './device-codes.js'

/**
 * The device verification page's forms and markup (RFC 8628 §3.3; routes/device.ts handles the
 * requests). Both forms are pending forms as the login form is (signin/browser.ts): a signed,
 * short-lived, SameSite=Lax cookie holds a double-submit CSRF token that the form repeats, and
 * what the form is about (the login session it was shown to; for the confirmation, the very
 * request the user saw), so nothing in the form's hidden fields is trusted for it.
 */
export const DEVICE_PAGE_NAME = 'Connect a device'
export const DEVICE_FORM_TTL_MS = 10 * 60_000
/** Pending forms of one kind one browser holds at most (one per open tab): no pile of cookies. */
export const MAX_PENDING_DEVICE_FORMS = 3

/** The code-entry form: shown to one login session. */
export interface PendingEntry {
  sid: string
}

/** The approve-or-deny form: one request, shown to one login session. */
export interface PendingConfirmation {
  sid: string
  /** The request's handle and normalised user code (device/device-codes.ts). */
  id: string
  userCode: string
  clientId: string
}

function path(config: AuthConfig): string {
  return `${issuerPath(config)}/device`
}

const ENTRY_FORM: PendingForm = { prefix: 'gh_device_', path, ttlMs: DEVICE_FORM_TTL_MS }
const CONFIRM_FORM: PendingForm = { prefix: 'gh_devconf_', path, ttlMs: DEVICE_FORM_TTL_MS }

/** The verification page's URL, with the user code the user came with (formatted), if any. */
export function devicePageUrl(config: AuthConfig, userCode?: string): string {
  const base = `${config.issuer}/device`
  return userCode === undefined ? base : `${base}?${new URLSearchParams({ user_code: userCode })}`
}

export function startEntry(reply: FastifyReply, deps: AuthDeps, entry: PendingEntry): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, ENTRY_FORM, entry, () => dropOldestPendingForms(reply, deps, ENTRY_FORM, MAX_PENDING_DEVICE_FORMS))
}

export function readEntry(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<PendingEntry> {
  return readPendingForm<PendingEntry>(request, deps, ENTRY_FORM, id, csrf, (p) => typeof p.sid === 'string')
}

export function startConfirmation(reply: FastifyReply, deps: AuthDeps, pending: PendingConfirmation): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, CONFIRM_FORM, pending, () => dropOldestPendingForms(reply, deps, CONFIRM_FORM, MAX_PENDING_DEVICE_FORMS))
}

export function readConfirmation(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<PendingConfirmation> {
  return readPendingForm<PendingConfirmation>(request, deps, CONFIRM_FORM, id, csrf, (p) => typeof p.sid === 'string' && typeof p.id === 'string' && typeof p.userCode === 'string' && typeof p.clientId === 'string')
}

export function clearConfirmation(reply: FastifyReply, config: AuthConfig, id: string): void {
  clearPendingForm(reply, config, CONFIRM_FORM, id)
}

// --- pages ----------------------------------------------------------------------------------------

export interface EntryPageInput {
  form: string
  csrf: string
  /** Who is signed in (the page says it, so that a shared browser is noticed). */
  username: string
  /** Pre-filled (from verification_uri_complete, or what the user typed before an error). */
  userCode?: string
  error?: string
}

/**
 * The code entry. Relative form action: the page is served at <issuer>/device, so "device" is
 * <issuer>/device even when the issuer has a path behind a proxy.
 */
export function sendEntryPage(reply: FastifyReply, status: number, input: EntryPageInput): FastifyReply {
  const error = input.error !== undefined && html`<p class="error" role="alert" id="code-error">${input.error}</p>`
  const described = input.error !== undefined ? { html: ' aria-describedby="code-error" aria-invalid="true"' } : { html: '' }
  const body = html`<p>Signed in as <strong>${input.username}</strong>. Enter the code shown on your device.</p>${error}<form method="post" action="device"><input type="hidden" name="form" value="${input.form}"><input type="hidden" name="csrf" value="${input.csrf}"><label for="user_code">Code</label><input id="user_code" class="code" name="user_code" type="text" autocomplete="one-time-code" autocapitalize="characters" spellcheck="false" required maxlength="64" placeholder="XXXX-XXXX" value="${input.userCode ?? ''}"${described} autofocus><button type="submit">Continue</button></form>`
  return sendPage(reply, { status, title: DEVICE_PAGE_NAME, body })
}

export interface ConfirmPageInput {
  confirm: string
  csrf: string
  clientName: string
  userCode: string
  scope: string
}

/** The question: which client, on which code, asks for which scopes. Nothing is decided until the user answers. */
export function sendConfirmPage(reply: FastifyReply, input: ConfirmPageInput): FastifyReply {
  const scopes = splitScope(input.scope)
  const list: Html = scopes.length === 0 ? html`<p>It asks for no particular permissions.</p>` : html`<p>It asks for:</p><ul id="scopes">${{ html: scopes.map((s) => html`<li>${s}</li>`.html).join('') }}</ul>`
  const body = html`<p><strong id="client-name">${input.clientName}</strong> on a device asks to use your account.</p><p>Check that your device shows the code <strong id="user-code" class="code">${formatUserCode(input.userCode)}</strong>.</p>${list}<form method="post" action="device"><input type="hidden" name="confirm" value="${input.confirm}"><input type="hidden" name="csrf" value="${input.csrf}"><button type="submit" name="action" value="approve">Allow</button><button type="submit" name="action" value="deny">Deny</button></form>`
  return sendPage(reply, { status: 200, title: 'Allow access?', body })
}
