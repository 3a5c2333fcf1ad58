/**
 * Drives the auth app through app.inject for the security suites: the OIDC harness (dev clients
 * plus the private_key_jwt client `svc-jwt`), the browser login, the code exchange and client
 * assertions.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { browserLogin as signIn, injectFetch } from '@gatehouse/test-harness'
import { s256 } from '../../services/auth/src/authorize/pkce.js'
import { Admin } from '../../services/auth/src/cli/admin.js'
import { basic, form } from '../../services/auth/test/helpers.js'
import { SERVICE_CLIENT_ID, type OidcApp } from '../../services/auth/test/oidc/harness.js'

export { startOidcApp, SERVICE_CLIENT_ID, type OidcApp } from '../../services/auth/test/oidc/harness.js'
export { basic, form } from '../../services/auth/test/helpers.js'

export const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
export const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
export const FORM = { 'content-type': 'application/x-www-form-urlencoded' } as const
export const CLI = basic('cli', 'cli-secret')
export const WEB = basic('web', 'web-secret')
export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

export function cookiesOf(res: { cookies: { name: string; value: string }[] }): Record<string, string> {
  return Object.fromEntries(res.cookies.map((c) => [c.name, c.value]))
}

export function authorizeQuery(extra: Record<string, string> = {}): string {
  return new URLSearchParams({
    response_type: 'code',
    client_id: 'web',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile documents:read',
    state: 'state-1',
    nonce: 'nonce-1',
    code_challenge: s256(VERIFIER),
    code_challenge_method: 'S256',
    ...extra,
  }).toString()
}

export interface BrowserLogin {
  code: string
  /** The cookies after the login (the session cookie). */
  session: Record<string, string>
  /** The login form's hidden fields and cookie, as the browser had them. */
  csrf: string
  interactionCookie: string
}

/** Signs alice in through /authorize and the login form (in process); returns the code and what the browser held. */
export async function browserLogin(h: OidcApp, extra: Record<string, string> = {}, password = 'alice-password', username = 'alice', remoteAddress = '127.0.0.1'): Promise<BrowserLogin> {
  const login = await signIn(new URL(`/authorize?${authorizeQuery(extra)}`, h.issuer), { username, password, fetch: injectFetch(h.app, { remoteAddress }) })
  if (!login.code || login.form === undefined) throw new Error(`no code: ${login.redirect.href}`)
  const interactionCookie = Object.entries(login.pageCookies).find(([k]) => k.startsWith('gh_login_'))?.[1] ?? ''
  return { code: login.code, session: login.loginCookies, csrf: login.form.csrf, interactionCookie }
}

export async function exchangeCode(h: OidcApp, code: string, extra: Record<string, string> = {}, auth: string | null = WEB) {
  const headers: Record<string, string> = { ...FORM }
  if (auth !== null) headers.authorization = auth
  return await h.app.inject({ method: 'POST', url: '/token', headers, payload: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER, ...extra }) })
}

export async function postForm(h: OidcApp, url: string, params: Record<string, string>, auth: string | null = CLI) {
  const headers: Record<string, string> = { ...FORM }
  if (auth !== null) headers.authorization = auth
  return await h.app.inject({ method: 'POST', url, headers, payload: form(params) })
}

/** A client assertion of `svc-jwt` (RFC 7523), valid unless told otherwise. */
export async function clientAssertion(h: OidcApp, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(h.clock.now() / 1000)
  return await new SignJWT({ iss: SERVICE_CLIENT_ID, sub: SERVICE_CLIENT_ID, aud: h.issuer, jti: randomUUID(), iat: now, exp: now + 60, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'svc-key-1' })
    .sign(h.serviceKey.privateKey)
}

export function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

/** The admin verbs (users set-password, disable, sessions revoke) over the app's own stores. */
export function adminOf(h: OidcApp): Admin {
  return new Admin({
    users: h.deps.users,
    clients: h.deps.clients,
    families: h.deps.families,
    sessions: h.deps.sessions,
    factors: h.deps.factors,
    backchannel: h.deps.backchannel,
    clock: h.deps.clock,
    accessTokenTtl: h.config.accessTokenTtl,
    resources: h.config.file.resources,
    log: { info() {} },
    trail: h.deps.audit,
    actor: 'security-test',
  })
}
