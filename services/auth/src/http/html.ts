import { randomBytes } from 'node:crypto'
import type { FastifyReply } from 'fastify'

/**
 * Server-rendered pages (login, errors, logged out): plain HTML forms that work without
 * JavaScript, every value HTML-escaped, and security headers on every page (DESIGN §8):
 * a CSP that allows only this response's inline style (by nonce) and form posts to ourselves,
 * no framing (clickjacking), no referrer (the query of /authorize carries state and nonce),
 * no MIME sniffing, no caching.
 */
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!)
}

/** Trusted markup: built only by the helpers below from escaped values. */
export interface Html {
  readonly html: string
}

export function html(strings: TemplateStringsArray, ...values: Array<string | Html | undefined | false>): Html {
  let out = strings[0] ?? ''
  values.forEach((v, i) => {
    if (typeof v === 'string') out += escapeHtml(v)
    else if (v !== undefined && v !== false) out += v.html
    out += strings[i + 1] ?? ''
  })
  return { html: out }
}

const STYLE = `
:root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:Canvas;color:CanvasText}
main{width:min(24rem,100% - 2rem);padding:2rem;border:1px solid GrayText;border-radius:.5rem}
h1{font-size:1.5rem;margin:0 0 .5rem}
p{margin:0 0 1rem}
label{display:block;font-weight:600;margin-top:1rem}
input{box-sizing:border-box;width:100%;font:inherit;padding:.5rem;margin-top:.25rem;border:1px solid GrayText;border-radius:.25rem}
button{margin-top:1.5rem;width:100%;font:inherit;font-weight:600;padding:.6rem;border:0;border-radius:.25rem;background:#1d4ed8;color:#fff;cursor:pointer}
input:focus-visible,button:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.error{padding:.75rem;border-left:4px solid #b91c1c;background:rgba(185,28,28,.1)}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .5rem}
.sessions{list-style:none;padding:0;margin:0}
.session,.factor{padding:.75rem 0;border-top:1px solid GrayText;overflow-wrap:anywhere}
.session button,.factor button{margin-top:.5rem}
.notice{padding:.75rem;border-left:4px solid #15803d;background:rgba(21,128,61,.1)}
.code{white-space:nowrap;font-family:ui-monospace,monospace;letter-spacing:.1em}
.secret{font-family:ui-monospace,monospace;word-spacing:.4em;overflow-wrap:anywhere}
.qr svg{display:block;width:min(14rem,100%);height:auto;margin:0 auto 1rem}
.recovery-codes{font-family:ui-monospace,monospace;font-size:1.1rem;padding-left:2rem}
summary{margin-top:1.5rem;cursor:pointer;font-weight:600}
summary:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
`

export interface PageOptions {
  status: number
  /** The document title and the page's heading. */
  title: string
  body: Html
  /**
   * Extra CSP form-action sources. A form posting to /login is answered with a redirect to the
   * client, and browsers apply form-action to that redirect too (CSP 3 §6.4.4), so the login page
   * allows exactly the origin of the validated redirect_uri.
   */
  formTargets?: readonly string[]
  /**
   * Scripts the page loads (absolute paths under the issuer, served by routes/assets.ts). Only a
   * page that runs a WebAuthn ceremony has any; then, and only then, its CSP allows
   * `script-src 'self'` (never inline script: the ceremony's options ride in a data attribute).
   */
  scripts?: readonly string[]
}

export function sendPage(reply: FastifyReply, page: PageOptions): FastifyReply {
  const nonce = randomBytes(16).toString('base64')
  const formAction = ["'self'", ...(page.formTargets ?? [])].join(' ')
  const scripts = page.scripts ?? []
  const scriptTags: Html = { html: scripts.map((src) => html`<script src="${src}"></script>`.html).join('') }
  const scriptSrc = scripts.length > 0 ? "; script-src 'self'" : ''
  const doc =
    '<!doctype html>\n' +
    html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>${page.title} – Gatehouse</title><style nonce="${nonce}">${{ html: STYLE }}</style></head><body><main><h1>${page.title}</h1>${page.body}</main>${scriptTags}</body></html>`.html
  return reply
    .code(page.status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', `default-src 'none'; style-src 'nonce-${nonce}'${scriptSrc}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`)
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .header('pragma', 'no-cache')
    .send(doc)
}

/** A CSP source for the origin of a URL: `https://host:port`, or `scheme:` for a custom scheme (native apps). */
export function cspSource(url: string): string | null {
  try {
    const u = new URL(url)
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.origin
    return /^[a-z][a-z0-9+.-]*:$/.test(u.protocol) ? u.protocol : null
  } catch {
    return null
  }
}

export interface LoginPageInput {
  clientName: string
  interaction: string
  csrf: string
  username?: string
  error?: string
  /**
   * The issuer's path ('' at the root). Given, the password form posts to `${root}/login` (an
   * absolute path) so that the page may be answered from any depth (POST /login/passkey,
   * POST /account/passkeys); without it, to the relative `login` as before.
   */
  root?: string
  /** "Sign in with a passkey" (username-less, mfa/passkeys.ts offerPasskeyLogin); absent when passkeys are not available. */
  passkey?: PasskeyOffer
}

/**
 * A WebAuthn ceremony a page offers (mfa/passkeys.ts builds it): a form the glue script
 * (services/auth/assets/passkeys.js) submits once the browser has the credential, with the JSON
 * of the response in its hidden `credential` field. The form is `hidden` until the script finds
 * WebAuthn in the browser, so without JavaScript the page shows nothing of it.
 */
export interface PasskeyOffer {
  /** Where the form posts: an absolute path under the issuer. */
  action: string
  mode: 'register' | 'authenticate'
  /**
   * The ceremony's pending form (its signed cookie holds the challenge): the hidden fields
   * `ceremony` and `ceremony_csrf`. Absent when the form only asks the server first (the account
   * page without a recent sign-in: the post answers with the login form).
   */
  ceremony?: { id: string; csrf: string; options: string }
  /** The scripts the page must load for it (sendPage `scripts`). */
  scripts: readonly string[]
}

/** The form of a passkey ceremony: the page's own hidden fields, the ceremony's, the credential field and one button. */
export function passkeyForm(offer: PasskeyOffer, hidden: Html, label: string, id: string): Html {
  const c = offer.ceremony
  const data = c === undefined ? html`` : html` data-options="${c.options}"`
  const fields = c === undefined ? html`` : html`<input type="hidden" name="ceremony" value="${c.id}"><input type="hidden" name="ceremony_csrf" value="${c.csrf}"><input type="hidden" name="credential" value="">`
  return html`<form method="post" action="${offer.action}" id="${id}" class="passkey" data-passkey="${offer.mode}"${data} hidden>${hidden}${fields}<button type="submit">${label}</button><p class="error" role="alert" data-passkey-error hidden></p></form>`
}

export function loginPage(input: LoginPageInput): Html {
  const error = input.error !== undefined && html`<p class="error" role="alert" id="login-error">${input.error}</p>`
  const described = input.error !== undefined ? { html: ' aria-describedby="login-error" aria-invalid="true"' } : { html: '' }
  // Relative action: the page is served at <issuer>/authorize or <issuer>/login, so "login" is
  // <issuer>/login even when the issuer has a path behind a proxy (or `root`, from deeper pages).
  const action = input.root === undefined ? 'login' : `${input.root}/login`
  const passkey = input.passkey !== undefined && html`<div class="or" id="passkey-login">${passkeyForm(input.passkey, html`<input type="hidden" name="interaction" value="${input.interaction}"><input type="hidden" name="csrf" value="${input.csrf}">`, 'Sign in with a passkey', 'passkey-login-form')}</div>`
  return html`<p>to continue to <strong>${input.clientName}</strong></p>${error}<form method="post" action="${action}"><input type="hidden" name="interaction" value="${input.interaction}"><input type="hidden" name="csrf" value="${input.csrf}"><label for="username">Username</label><input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="256" value="${input.username ?? ''}"${described}${input.username ? '' : { html: ' autofocus' }}><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${described}${input.username ? { html: ' autofocus' } : ''}><button type="submit">Sign in</button></form>${passkey}`
}

export function messagePage(kind: 'error' | 'info', message: string, hint?: string): Html {
  const role = kind === 'error' ? { html: ' class="error" role="alert"' } : { html: ' role="status"' }
  return html`<p${role}>${message}</p>${hint !== undefined && html`<p>${hint}</p>`}`
}
