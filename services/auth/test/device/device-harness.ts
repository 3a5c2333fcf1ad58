import { CookieJar, injectFetch, type FetchLike } from '@gatehouse/test-harness'
import { form } from '../helpers.js'
import type { OidcApp } from '../oidc/harness.js'

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
export const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' } as const

export interface Page {
  status: number
  html: string
  headers: Headers
  location: string | null
}

/** A hidden field of a page's form (the values are HTML-escaped base64url: no quotes inside). */
export function field(html: string, name: string): string {
  const v = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1]
  if (v === undefined) throw new Error(`no field ${name} in the page: ${html.slice(0, 400)}`)
  return v
}

/** POST /device_authorization as the public demo client `cli-device` (or with `auth`). */
export async function startDevice(h: OidcApp, params: Record<string, string> = { client_id: 'cli-device' }, auth?: string) {
  const headers: Record<string, string> = { ...FORM_HEADERS }
  if (auth !== undefined) headers.authorization = auth
  return await h.app.inject({ method: 'POST', url: '/device_authorization', headers, payload: form(params) })
}

/** One poll of /token (RFC 8628 §3.4) as `clientId` (a public client). */
export async function poll(h: OidcApp, deviceCode: string, clientId = 'cli-device') {
  return await h.app.inject({ method: 'POST', url: '/token', headers: FORM_HEADERS, payload: form({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }) })
}

/** A browser on the verification page, in process (app.inject), with its cookies. */
export class DeviceBrowser {
  readonly jar = new CookieJar()
  readonly #send: FetchLike
  readonly #base: string

  constructor(h: OidcApp, remoteAddress = '127.0.0.1') {
    this.#send = injectFetch(h.app, { remoteAddress })
    this.#base = h.issuer
  }

  async get(path: string): Promise<Page> {
    return await this.#page(await this.#send(new URL(path, this.#base), { redirect: 'manual', headers: { cookie: this.jar.header() } }))
  }

  async post(path: string, fields: Record<string, string>, cookies = true): Promise<Page> {
    const headers: Record<string, string> = { ...FORM_HEADERS }
    if (cookies) headers.cookie = this.jar.header()
    return await this.#page(await this.#send(new URL(path, this.#base), { method: 'POST', redirect: 'manual', headers, body: form(fields) }))
  }

  /** Opens `path` (default /device) and signs in on the login form it shows; returns the redirect back. */
  async signIn(path = '/device', username = 'alice', password = 'alice-password'): Promise<Page> {
    const page = await this.get(path)
    if (page.status !== 200 || !page.html.includes('name="interaction"')) throw new Error(`no login form at ${path}: ${page.status}`)
    return await this.post('/login', { interaction: field(page.html, 'interaction'), csrf: field(page.html, 'csrf'), username, password })
  }

  /** The code-entry page, then its form posted with `userCode`: the confirmation page (or an error). */
  async enter(userCode: string): Promise<Page> {
    const page = await this.get('/device')
    if (page.status !== 200) throw new Error(`the entry page answered ${page.status}`)
    return await this.post('/device', { form: field(page.html, 'form'), csrf: field(page.html, 'csrf'), user_code: userCode })
  }

  /** Answers a confirmation page. */
  async decide(confirmPage: Page, action: 'approve' | 'deny'): Promise<Page> {
    return await this.post('/device', { confirm: field(confirmPage.html, 'confirm'), csrf: field(confirmPage.html, 'csrf'), action })
  }

  async #page(res: Response): Promise<Page> {
    this.jar.store(res)
    return { status: res.status, html: await res.text(), headers: res.headers, location: res.headers.get('location') }
  }
}
