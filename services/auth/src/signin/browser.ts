import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { OAuthError } from '@gatehouse/service-kit'
import { isAuthorizationRequest, type AuthorizationRequest } from '../authorize/authorization-request.js'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import { announceRevoked } from '../families/family-revocation.js'
import { endSessions, type SessionEndDeps, type SessionEndReason } from '../logout/end-sessions.js'
import type { LoginSession } from './sessions.js'

/**
 * The browser side of the code flow: the login session cookie, the pending-login ("interaction")
 * cookie and the redirects back to the client.
 *
 * Cookies are signed (HMAC with COOKIE_SECRET by @fastify/cookie), HttpOnly, SameSite=Lax and
 * Secure outside local development (DESIGN §8).
 */
export const SESSION_COOKIE = 'gh_session'
/**
 * Under an https issuer the session cookie is `__Host-gh_session`: browsers then accept it only
 * with Secure, Path=/ and no Domain, from a secure origin (RFC 6265bis §4.1.3.2), so neither a
 * sibling subdomain nor a plain-http response can set or shadow it (session fixation).
 */
export const HOST_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`
const INTERACTION_COOKIE_PREFIX = 'gh_login_'
/** How long the login form stays usable after /authorize showed it. */
export const INTERACTION_TTL_MS = 10 * 60_000

/** http://127.0.0.1, http://localhost and http://[::1] are local development: no Secure flag, no HTTPS there. */
export function isLocalDevelopment(issuer: string): boolean {
  const u = new URL(issuer)
  return u.protocol === 'http:' && (u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]')
}

/** The issuer's path ('' at the root): cookies are scoped under it when the issuer has one. */
export function issuerPath(config: AuthConfig): string {
  return new URL(config.issuer).pathname.replace(/\/+$/, '')
}

export function cookieOptions(config: AuthConfig, path: string): CookieSerializeOptions {
  return { path, httpOnly: true, sameSite: 'lax', secure: !isLocalDevelopment(config.issuer), signed: true }
}

export function readSigned(request: FastifyRequest, name: string): string | null {
  const raw = request.cookies[name]
  if (raw === undefined) return null
  const unsigned = request.unsignCookie(raw)
  return unsigned.valid && unsigned.value !== null ? unsigned.value : null
}

// --- login session --------------------------------------------------------------------------

/** The session cookie's name and options: `__Host-` (Path=/, Secure, no Domain) under https. */
export function sessionCookie(config: AuthConfig): { name: string; options: CookieSerializeOptions } {
  if (new URL(config.issuer).protocol === 'https:') return { name: HOST_SESSION_COOKIE, options: { ...cookieOptions(config, '/'), secure: true } }
  return { name: SESSION_COOKIE, options: cookieOptions(config, issuerPath(config) || '/') }
}

/** The live login session of this browser, or null (no cookie, bad signature, ended, expired). */
export async function currentSession(request: FastifyRequest, deps: AuthDeps): Promise<LoginSession | null> {
  const token = readSigned(request, sessionCookie(deps.config).name)
  return token === null ? null : await deps.sessions.resolve(token)
}

export function setSessionCookie(reply: FastifyReply, config: AuthConfig, token: string): void {
  // No Max-Age: the cookie ends with the browser; the server-side session bounds it anyway.
  const { name, options } = sessionCookie(config)
  reply.setCookie(name, token, options)
}

export function clearSessionCookie(reply: FastifyReply, config: AuthConfig): void {
  const { name, options } = sessionCookie(config)
  reply.clearCookie(name, { ...options, signed: false })
}

/** What ending sessions needs, from the service's dependencies (logout/end-sessions.ts). */
export function sessionEndDeps(deps: AuthDeps, log: FastifyBaseLogger): SessionEndDeps {
  return {
    sessions: deps.sessions,
    families: deps.families,
    backchannel: deps.backchannel,
    announce: (families, reason) => announceRevoked(deps, log, families, reason),
    log,
    audit: deps.audit,
  }
}

/** Ends a login session and revokes every family started from it (logout, or another user signing in). */
export async function endSession(deps: AuthDeps, log: FastifyBaseLogger, sessionId: string, reason: SessionEndReason): Promise<boolean> {
  const { sessions } = await endSessions(sessionEndDeps(deps, log), [sessionId], reason)
  return sessions.length > 0
}

// --- pending forms: the login form and the logout confirmation -------------------------------

/**
 * A form the browser posts back (the login form, the logout confirmation). What it is about rides
 * in a signed, short-lived cookie named by a random id in the form, so nothing in the form's
 * hidden fields is trusted for it; one cookie per pending form, so two tabs do not disturb each
 * other. The cookie also holds a double-submit CSRF token that the form must repeat, compared in
 * constant time.
 */
export interface PendingForm {
  /** The cookie's name before the id. */
  prefix: string
  /** The cookie's path: where the form posts. */
  path: (config: AuthConfig) => string
  ttlMs: number
}

/** What a pending form's cookie holds besides its content. */
export interface PendingFormSeal {
  /** Double-submit CSRF token: in the signed cookie and in the form's hidden field. */
  csrf: string
  /** ms epoch */
  exp: number
}

export type PendingFormCheck<T> = { ok: true; value: T & PendingFormSeal } | { ok: false; reason: 'missing' | 'expired' | 'csrf' }

const PENDING_FORM_ID = /^[A-Za-z0-9_-]{16}$/
/** Browsers keep cookies up to 4096 bytes; beyond that what a form is about cannot be carried. */
const MAX_COOKIE_VALUE = 3800

/**
 * Sets the cookie of a new pending form and returns the id and CSRF token the form carries; null
 * when the content is too large to carry. `makeRoom` runs just before the cookie is set.
 */
export function startPendingForm(reply: FastifyReply, deps: AuthDeps, form: PendingForm, content: object, makeRoom?: () => void): { id: string; csrf: string } | null {
  const id = randomBytes(12).toString('base64url')
  const csrf = randomBytes(32).toString('base64url')
  const value = Buffer.from(JSON.stringify({ ...content, csrf, exp: deps.clock() + form.ttlMs })).toString('base64url')
  if (value.length > MAX_COOKIE_VALUE) return null
  makeRoom?.()
  reply.setCookie(form.prefix + id, value, { ...cookieOptions(deps.config, form.path(deps.config)), maxAge: form.ttlMs / 1000 })
  return { id, csrf }
}

/** The pending form named by `id`, if its cookie is genuine, holds what `isContent` accepts, is unexpired and the CSRF token matches. */
export function readPendingForm<T>(
  request: FastifyRequest,
  deps: AuthDeps,
  form: PendingForm,
  id: string | undefined,
  csrf: string | undefined,
  isContent: (value: Record<string, unknown>) => boolean,
): PendingFormCheck<T> {
  if (id === undefined || !PENDING_FORM_ID.test(id)) return { ok: false, reason: 'missing' }
  const value = readSigned(request, form.prefix + id)
  if (value === null) return { ok: false, reason: 'missing' }
  let p: Record<string, unknown> | null
  try {
    p = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Record<string, unknown> | null
  } catch {
    return { ok: false, reason: 'missing' }
  }
  if (typeof p?.csrf !== 'string' || typeof p.exp !== 'number' || !isContent(p)) return { ok: false, reason: 'missing' }
  if (deps.clock() >= p.exp) return { ok: false, reason: 'expired' }
  const given = Buffer.from(csrf ?? '')
  const expected = Buffer.from(p.csrf)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'csrf' }
  return { ok: true, value: p as T & PendingFormSeal }
}

export function clearPendingForm(reply: FastifyReply, config: AuthConfig, form: PendingForm, id: string): void {
  reply.clearCookie(form.prefix + id, { ...cookieOptions(config, form.path(config)), signed: false })
}

/**
 * Clears the pending forms of one kind beyond `max - 1`, the oldest (or unreadable) first, so that
 * a new one can be set without a pile of cookies (one per open tab at most `max`). Pass it as
 * `makeRoom` to startPendingForm.
 */
export function dropOldestPendingForms(reply: FastifyReply, deps: AuthDeps, form: PendingForm, max: number): void {
  const request = reply.request
  const held = Object.keys(request.cookies ?? {})
    .filter((name) => name.startsWith(form.prefix))
    .map((name) => ({ name, exp: sealExp(readSigned(request, name)) }))
  if (held.length < max) return
  held.sort((a, b) => a.exp - b.exp)
  for (const { name } of held.slice(0, held.length - (max - 1))) {
    reply.clearCookie(name, { ...cookieOptions(deps.config, form.path(deps.config)), signed: false })
  }
}

function sealExp(value: string | null): number {
  if (value === null) return -1
  try {
    const exp = (JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Partial<PendingFormSeal> | null)?.exp
    return typeof exp === 'number' ? exp : -1
  } catch {
    return -1
  }
}

// --- pending login (interaction) --------------------------------------------------------------

/**
 * A pending login: the validated authorization request the login form continues, or the page it
 * returns to once the user is signed in: the device verification page (RFC 8628 §3.3,
 * routes/device.ts) or the account page (routes/account.ts).
 */
export type Interaction = { request: AuthorizationRequest } | { device: DeviceReturn } | { account: true }

/** Where a sign-in for the device verification page returns: the page, with the user code the user came with (never approved by itself). */
export interface DeviceReturn {
  userCode?: string
}

function isDeviceReturn(v: unknown): v is DeviceReturn {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const code = (v as Record<string, unknown>).userCode
  return code === undefined || (typeof code === 'string' && code.length <= 64)
}

const LOGIN_FORM: PendingForm = { prefix: INTERACTION_COOKIE_PREFIX, path: (config) => `${issuerPath(config)}/login`, ttlMs: INTERACTION_TTL_MS }

/** Starts a pending login; null when the request is too large to carry. */
export function startInteraction(reply: FastifyReply, deps: AuthDeps, request: AuthorizationRequest): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, LOGIN_FORM, { request } satisfies Interaction)
}

/** Starts a pending login that returns to the device verification page. */
export function startDeviceInteraction(reply: FastifyReply, deps: AuthDeps, device: DeviceReturn): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, LOGIN_FORM, { device } satisfies Interaction)
}

/** Starts a pending login that returns to the account page. */
export function startAccountInteraction(reply: FastifyReply, deps: AuthDeps): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, LOGIN_FORM, { account: true } satisfies Interaction)
}

/** The pending login named by the form, if its cookie is genuine, unexpired and the CSRF token matches. */
export function readInteraction(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<Interaction> {
  return readPendingForm<Interaction>(request, deps, LOGIN_FORM, id, csrf, (i) =>
    isAuthorizationRequest(i.request) || (i.request === undefined && (isDeviceReturn(i.device) || (i.device === undefined && i.account === true))),
  )
}

export function clearInteraction(reply: FastifyReply, config: AuthConfig, id: string): void {
  clearPendingForm(reply, config, LOGIN_FORM, id)
}

// --- authorization responses ------------------------------------------------------------------

/** Appends parameters to a registered redirect URI (keeping its own query, RFC 6749 §3.1.2). */
function redirectTo(reply: FastifyReply, redirectUri: string, params: Record<string, string | undefined>, status: 302 | 303): FastifyReply {
  const url = new URL(redirectUri)
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v)
  return reply.code(status).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').header('location', url.toString()).send()
}

/**
 * Success: a new code, bound to the client, the redirect URI, the PKCE challenge, the session,
 * the nonce and the DPoP key (`dpop_jkt`, RFC 9449 §10) when the request named one, the session's
 * amr and the request's acr_values (the tokens' `amr`/`acr`); `iss` identifies us to the client (RFC 9207 §2).
 */
export async function redirectWithCode(reply: FastifyReply, deps: AuthDeps, req: AuthorizationRequest, session: LoginSession, status: 302 | 303): Promise<FastifyReply> {
  // The session's last use, and the client among those told when it ends (DESIGN §10.1).
  await deps.sessions.recordUse(session.id, req.clientId)
  const code = await deps.codes.issue({
    clientId: req.clientId,
    redirectUri: req.redirectUri,
    codeChallenge: req.codeChallenge,
    scope: req.scope,
    userId: session.userId,
    sessionId: session.id,
    authTime: session.authTime,
    nonce: req.nonce,
    dpopJkt: req.dpopJkt,
    ...(req.resources === undefined ? {} : { resources: req.resources }),
    amr: [...session.amr],
    ...(req.acrValues === undefined ? {} : { acrValues: req.acrValues }),
  })
  return redirectTo(reply, req.redirectUri, { code, state: req.state, iss: deps.config.issuer }, status)
}

/** RFC 6749 §4.1.2.1 error response (+ `iss`, RFC 9207), only ever to a validated redirect URI. */
export function redirectWithError(reply: FastifyReply, deps: AuthDeps, redirectUri: string, state: string | undefined, error: OAuthError, status: 302 | 303): FastifyReply {
  return redirectTo(reply, redirectUri, { error: error.code, error_description: error.description, state, iss: deps.config.issuer }, status)
}
