/**
 * Resource indicators (RFC 8707) fixture, shared by the flow tests here and the attack suite
 * (test/security): a second resource `api://reports` with its own scopes, a client `dash` allowed
 * both resources (default `api://resource`), and helpers that send `resource` repeated.
 */
import { browserLogin, injectFetch } from '@gatehouse/test-harness'
import { s256 } from '../../src/authorize/pkce.js'
import { basic } from '../helpers.js'
import { startOidcApp, type OidcApp, type OidcAppOptions } from './harness.js'

export const RESOURCE = 'api://resource'
export const REPORTS = 'api://reports'
/** Allowed to no client here. */
export const ELSEWHERE = 'api://elsewhere'
export const DASH = basic('dash', 'dash-secret')
export const WEB = basic('web', 'web-secret')
export const CLI = basic('cli', 'cli-secret')
export const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
export const VERIFIER = 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'
/** dash's scope: user claims (no resource owns them), one of each resource's. */
export const DASH_SCOPE = 'openid profile email documents:read reports:read'

export const DASH_CLIENT = {
  client_id: 'dash',
  client_name: 'Dashboard (two resources)',
  client_secret: 'dash-secret',
  grant_types: ['authorization_code', 'refresh_token', 'password', 'client_credentials'],
  scope: DASH_SCOPE,
  audience: RESOURCE,
  resources: [REPORTS],
  redirect_uris: [REDIRECT_URI],
  introspection: true,
}

export const REPORTS_RESOURCE = { audience: REPORTS, scopes: ['reports:read', 'reports:write'] }

/** The OIDC app with `api://reports` configured and the client `dash`. */
export async function startResourceApp(options: OidcAppOptions = {}): Promise<OidcApp> {
  return await startOidcApp({ ...options, resources: [REPORTS_RESOURCE, ...(options.resources ?? [])], clients: [DASH_CLIENT, ...(options.clients ?? [])] })
}

/** A form or query string; an array value repeats the parameter. */
export function encode(params: Record<string, string | readonly string[]>): string {
  const out = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) for (const one of typeof v === 'string' ? [v] : v) out.append(k, one)
  return out.toString()
}

export async function postToken(h: OidcApp, params: Record<string, string | readonly string[]>, auth: string = DASH) {
  return await h.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth }, payload: encode(params) })
}

/** The /authorize query of `dash` (PKCE with VERIFIER); `extra` may repeat `resource`. */
export function authorizeUrl(h: OidcApp, extra: Record<string, string | readonly string[]> = {}): URL {
  const query = encode({
    response_type: 'code',
    client_id: 'dash',
    redirect_uri: REDIRECT_URI,
    scope: DASH_SCOPE,
    state: 'state-1',
    code_challenge: s256(VERIFIER),
    code_challenge_method: 'S256',
    ...extra,
  })
  return new URL(`/authorize?${query}`, h.issuer)
}

/** alice signs in through /authorize (in process); the redirect back to the client (a code, or an error). */
export async function authorize(h: OidcApp, extra: Record<string, string | readonly string[]> = {}): Promise<URL> {
  return (await browserLogin(authorizeUrl(h, extra), { fetch: injectFetch(h.app) })).redirect
}

/** A code for `dash` whose request asked for `resources` (none: the default). */
export async function codeFor(h: OidcApp, resources: readonly string[] = []): Promise<string> {
  const back = await authorize(h, resources.length > 0 ? { resource: resources } : {})
  const code = back.searchParams.get('code')
  if (code === null) throw new Error(`no code: ${back.href}`)
  return code
}

export async function exchange(h: OidcApp, code: string, extra: Record<string, string | readonly string[]> = {}) {
  return await postToken(h, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER, ...extra })
}

export function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}
