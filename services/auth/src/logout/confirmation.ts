import type { FastifyReply, FastifyRequest } from 'fastify'
import { clearPendingForm, dropOldestPendingForms, issuerPath, readPendingForm, startPendingForm, type PendingForm, type PendingFormCheck } from '../signin/browser.js'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import { cspSource, html, sendPage } from '../http/html.js'

/**
 * The logout confirmation (OIDC RP-Initiated Logout 1.0 §2: "the OP MUST ask the End-User ... if
 * an id_token_hint was not provided or if the supplied ID Token does not belong to the current OP
 * session"). The page's form POSTs back to /logout; it is CSRF-protected the way the login form
 * is: a signed, SameSite=Lax, short-lived cookie holds a random token that the form must repeat,
 * compared in constant time. The cookie also carries what the request asked for after logout
 * (the validated post_logout_redirect_uri, its state, the client), so nothing in the form is
 * trusted for it, and the session the user was asked about: a confirmation never ends another.
 */
export interface PendingLogout {
  /** The login session the user is asked to end. */
  sid: string
  /** A post_logout_redirect_uri already checked against the client's registered ones. */
  redirect?: string
  state?: string
  clientId?: string
}

const COOKIE_PREFIX = 'gh_logout_'
export const LOGOUT_CONFIRMATION_TTL_MS = 10 * 60_000
/**
 * Pending confirmations one browser holds at most (one per open tab, in practice). Each cookie
 * may be near the cookie size limit (signin/browser.ts); without a bound, pages that send the browser to /logout again
 * and again would pile them up until its Cookie header passes the server's header limit (16 KiB)
 * and /logout answers 431 to it for LOGOUT_CONFIRMATION_TTL_MS.
 */
export const MAX_PENDING_LOGOUTS = 3

function path(config: AuthConfig): string {
  return `${issuerPath(config)}/logout`
}

const CONFIRMATION_FORM: PendingForm = { prefix: COOKIE_PREFIX, path, ttlMs: LOGOUT_CONFIRMATION_TTL_MS }

/** Starts a pending logout; null when what it must carry is too large for a cookie. */
export function startLogoutConfirmation(reply: FastifyReply, deps: AuthDeps, pending: PendingLogout): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, CONFIRMATION_FORM, pending, () => dropOldestPendingForms(reply, deps, CONFIRMATION_FORM, MAX_PENDING_LOGOUTS))
}

const optionalString = (v: unknown): boolean => v === undefined || typeof v === 'string'

/** The pending logout the form names, if its cookie is genuine and unexpired and the CSRF token matches. */
export function readLogoutConfirmation(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<PendingLogout> {
  return readPendingForm<PendingLogout>(request, deps, CONFIRMATION_FORM, id, csrf, (p) => typeof p.sid === 'string' && optionalString(p.redirect) && optionalString(p.state) && optionalString(p.clientId))
}

export function clearLogoutConfirmation(reply: FastifyReply, config: AuthConfig, id: string): void {
  clearPendingForm(reply, config, CONFIRMATION_FORM, id)
}

/**
 * The question. "Sign out" ends the session and follows the request's redirect, which the form's
 * CSP must allow (form-action applies to the redirect after the POST, CSP 3 §6.4.4).
 */
export function sendLogoutConfirmation(reply: FastifyReply, input: { id: string; csrf: string; clientName?: string; redirect?: string }): FastifyReply {
  const target = input.redirect === undefined ? null : cspSource(input.redirect)
  const from = input.clientName !== undefined ? html`<p><strong>${input.clientName}</strong> asks to sign you out.</p>` : html`<p>A page asks to sign you out.</p>`
  const body = html`${from}<p>Do you want to sign out of this server? Applications you signed in to with it will be signed out too.</p><form method="post" action="logout"><input type="hidden" name="confirm" value="${input.id}"><input type="hidden" name="csrf" value="${input.csrf}"><button type="submit" name="action" value="logout" autofocus>Sign out</button><button type="submit" name="action" value="cancel">Stay signed in</button></form>`
  return sendPage(reply, { status: 200, title: 'Sign out?', body, formTargets: target === null ? [] : [target] })
}
