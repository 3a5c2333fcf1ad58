/**
 * HTTP helpers for tests that drive the services over real HTTP (or through an in-process
 * fetch): form posts to /token, JSON reads, bounded polling, and a browser's login through
 * /authorize and the login form.
 */

/** `Basic base64(id:secret)`, each part form-encoded (RFC 6749 §2.3.1). */
export function basicAuth(id: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')
}

/** The dev config's `cli` client (password and refresh_token grants). */
export const CLI_BASIC = basicAuth('cli', 'cli-secret')

/** The members of a /token answer the tests read; anything else is there too. */
export interface TokenBody {
  access_token?: string
  refresh_token?: string
  id_token?: string
  error?: string
  error_description?: string
  [member: string]: unknown
}

export interface JsonResponse<B = Record<string, unknown>> {
  status: number
  body: B
  headers: Headers
}

/** The body as JSON; `{}` when empty, `{ text }` when it is not JSON. */
async function jsonOf(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text()
  if (text === '') return {}
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch {
    return { text }
  }
}

/** POSTs `params` form-encoded, with `authorization` unless it is null. */
export async function postForm(url: string | URL, params: Record<string, string>, authorization: string | null = CLI_BASIC): Promise<JsonResponse<TokenBody>> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (authorization !== null) headers.authorization = authorization
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(params) })
  return { status: res.status, body: await jsonOf(res), headers: res.headers }
}

/** POST {issuer}/token as the `cli` client unless told otherwise. */
export async function postToken(issuer: string, params: Record<string, string>, authorization: string | null = CLI_BASIC): Promise<JsonResponse<TokenBody>> {
  return await postForm(`${issuer}/token`, params, authorization)
}

/** GET a JSON resource, with a bearer token when given. */
export async function getJson(url: string | URL, accessToken?: string): Promise<JsonResponse> {
  const res = await fetch(url, accessToken === undefined ? {} : { headers: { authorization: `Bearer ${accessToken}` } })
  return { status: res.status, body: await jsonOf(res), headers: res.headers }
}

/** Polls until `check` holds (bounded): waiting for an event, not sleeping for timing. A probe that throws is tried again. */
export async function eventually<T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let error: unknown
    try {
      const v = await probe()
      if (check(v)) return v
    } catch (err) {
      error = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${error instanceof Error ? ` (${error.message})` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** Resolves with the first value `subscribe` emits, or rejects after `ms` (waiting for an event, not sleeping). */
export function waitFor<T>(subscribe: (resolve: (v: T) => void) => void, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    subscribe((v) => {
      clearTimeout(timer)
      resolve(v)
    })
  })
}

// ---------------------------------------------------------------------------------------------
// A browser's login

/** The name → value pairs a response's Set-Cookie headers set (a cleared cookie as ''). */
export function setCookies(res: Response): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';')
    const eq = pair!.indexOf('=')
    out[pair!.slice(0, eq).trim()] = pair!.slice(eq + 1).trim()
  }
  return out
}

/** A minimal cookie jar for driving the login form with fetch (name → value, no attributes). */
export class CookieJar {
  readonly cookies = new Map<string, string>()
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      if (value === '' || /max-age=0/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }
}

export interface LoginForm {
  interaction: string
  csrf: string
}

/** The hidden fields of the login page. */
export function parseLoginForm(html: string): LoginForm {
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1]
  const interaction = field('interaction')
  const csrf = field('csrf')
  if (interaction === undefined || csrf === undefined) throw new Error('no login form in the page')
  return { interaction, csrf }
}

export type FetchLike = (url: URL, init: RequestInit) => Promise<Response>

export interface BrowserLoginOptions {
  username?: string
  password?: string
  /** The browser's cookies; a new jar by default. */
  jar?: CookieJar
  /** How requests travel; global fetch by default (injectFetch for an app in the same process). */
  fetch?: FetchLike
}

export interface BrowserLoginResult {
  /** Where the browser is sent back to: the client's redirect URI with `code` (or `error`) and `state`. */
  redirect: URL
  code: string | null
  /** The login form's hidden fields; undefined when a live session skipped the form. */
  form: LoginForm | undefined
  /** The cookies the login page set (the interaction cookie). */
  pageCookies: Record<string, string>
  /** The cookies the login answer set (the session cookie; a cleared one as ''). */
  loginCookies: Record<string, string>
  jar: CookieJar
}

/**
 * Follows the browser part of the code flow: GET the authorization URL (the login page, or
 * straight to the client when the session is live), POST the form with the cookies, and return
 * the redirect back to the client.
 */
export async function browserLogin(authorizationUrl: URL | string, options: BrowserLoginOptions = {}): Promise<BrowserLoginResult> {
  const url = new URL(authorizationUrl)
  const jar = options.jar ?? new CookieJar()
  const send = options.fetch ?? ((u, init) => fetch(u, init))
  const page = await send(url, { redirect: 'manual', headers: { cookie: jar.header() } })
  jar.store(page)
  const pageCookies = setCookies(page)
  const done = (location: string | null, form: LoginForm | undefined, loginCookies: Record<string, string>): BrowserLoginResult => {
    const redirect = new URL(location ?? '', url)
    return { redirect, code: redirect.searchParams.get('code'), form, pageCookies, loginCookies, jar }
  }
  if (page.status === 302 || page.status === 303) return done(page.headers.get('location'), undefined, {})
  if (page.status !== 200) throw new Error(`/authorize answered ${page.status}: ${(await page.text()).slice(0, 200)}`)
  const form = parseLoginForm(await page.text())
  const res = await send(new URL('login', url), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() },
    body: new URLSearchParams({ ...form, username: options.username ?? 'alice', password: options.password ?? 'alice-password' }).toString(),
  })
  jar.store(res)
  if (res.status !== 303) throw new Error(`/login answered ${res.status}: ${(await res.text()).slice(0, 200)}`)
  return done(res.headers.get('location'), form, setCookies(res))
}

/** What injectFetch needs of an app: fastify's `inject`. */
export interface Injectable {
  inject(request: {
    method: 'GET' | 'POST'
    url: string
    headers: Record<string, string>
    payload?: string
    remoteAddress?: string
  }): Promise<{ statusCode: number; headers: Record<string, string | string[] | number | undefined>; body: string }>
}

/** A fetch that sends through `app.inject` (no socket), from `remoteAddress` when given. Redirects are never followed. */
export function injectFetch(app: Injectable, options: { remoteAddress?: string } = {}): FetchLike {
  return async (url, init) => {
    const headers: Record<string, string> = {}
    new Headers(init.headers).forEach((v, k) => {
      if (v !== '') headers[k] = v
    })
    const res = await app.inject({
      method: init.method === 'POST' ? 'POST' : 'GET',
      url: url.pathname + url.search,
      headers,
      ...(typeof init.body === 'string' ? { payload: init.body } : {}),
      ...(options.remoteAddress === undefined ? {} : { remoteAddress: options.remoteAddress }),
    })
    const out = new Headers()
    for (const [k, v] of Object.entries(res.headers)) {
      if (v === undefined) continue
      for (const one of Array.isArray(v) ? v : [String(v)]) out.append(k, one)
    }
    const nullBody = res.statusCode === 204 || res.statusCode === 304
    return new Response(nullBody ? null : res.body, { status: res.statusCode, headers: out })
  }
}
