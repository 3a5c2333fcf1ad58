import type { FastifyReply } from 'fastify'
import type { AuthConfig } from '../config.js'
import { cspSource, html, sendPage, type Html } from '../http/html.js'
import { secondStepUrl, type SecondStepMethods } from './second-step.js'

/**
 * The second step's page (signin/second-step.ts): plain forms that work without JavaScript, by
 * keyboard and on a phone. A code of the authenticator app (a numeric keyboard, and the one-time
 * code the phone may offer to fill in); "use a recovery code instead" as a second small form in a
 * <details> (opened when its code was the one refused); and, for a user with a passkey where
 * passkeys can be used (an issuer with a host name), the passkey ceremony (mfa/passkeys.ts: the
 * only part that needs JavaScript).
 */
export const SECOND_STEP_TITLE = 'Two-step verification'

/** One message for a wrong or already used code (which of the two is only in the audit trail). */
export const SECOND_FACTOR_FAILED_MESSAGE = 'That code is not correct or has already been used.'

export interface SecondStepPageInput {
  config: AuthConfig
  /** The second step's id and CSRF token (its hidden fields). */
  step: string
  csrf: string
  /** What the user signs in to (the login form's name of it). */
  clientName: string
  /** The URL the answer redirects to once signed in: the page's CSP form-action must allow it. */
  redirect: string
  methods: SecondStepMethods
  /** The error to show, and the form it belongs to. */
  error?: { message: string; method: 'totp' | 'recovery' | 'passkey' }
  /** The passkey section (mfa/passkeys.ts passkeyStepSection) and the scripts its ceremony needs; absent when passkeys cannot be used here. */
  passkey?: { section: Html; scripts: readonly string[] }
}

export function secondStepPage(input: SecondStepPageInput): Html {
  const action = secondStepUrl(input.config)
  const hidden = html`<input type="hidden" name="step" value="${input.step}"><input type="hidden" name="csrf" value="${input.csrf}">`
  const err = input.error
  // An error about a form no longer shown (the last recovery code spent meanwhile) goes on top.
  const withPasskey = input.methods.passkey && input.passkey !== undefined
  const shown = { totp: input.methods.totp, recovery: input.methods.recovery, passkey: withPasskey }
  const errorOf = (method: 'totp' | 'recovery' | 'passkey'): Html | false => err?.method === method && html`<p class="error" role="alert" id="${method}-error">${err.message}</p>`
  const orphan = err !== undefined && !shown[err.method] && html`<p class="error" role="alert">${err.message}</p>`
  const described = (method: 'totp' | 'recovery'): Html => (err?.method === method ? { html: ` aria-describedby="${method}-error" aria-invalid="true"` } : { html: '' })
  const totp =
    input.methods.totp &&
    html`<form method="post" action="${action}">${hidden}<label for="code">Code from your authenticator app</label><input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="9" autofocus${described('totp')}><button type="submit">Verify</button></form>`
  const passkey = withPasskey && html`${errorOf('passkey')}${input.passkey!.section}`
  const recoveryForm = html`<form method="post" action="${action}">${hidden}<label for="recovery_code">Recovery code</label><input id="recovery_code" name="recovery_code" type="text" autocomplete="off" autocapitalize="none" spellcheck="false" required maxlength="32"${input.methods.totp ? '' : { html: ' autofocus' }}${described('recovery')}><button type="submit">Use recovery code</button></form>`
  const recovery =
    input.methods.recovery &&
    (input.methods.totp || withPasskey
      ? html`<details${err?.method === 'recovery' ? { html: ' open' } : ''}><summary>Use a recovery code instead</summary>${errorOf('recovery')}${recoveryForm}</details>`
      : html`${errorOf('recovery')}${recoveryForm}`)
  const none = !input.methods.totp && !withPasskey && !input.methods.recovery && html`<p class="error" role="alert">No second factor can be used here. Ask your administrator to reset it.</p>`
  return html`<p>to continue to <strong>${input.clientName}</strong></p>${orphan}${errorOf('totp')}${totp}${passkey}${recovery}${none}`
}

export function sendSecondStepPage(reply: FastifyReply, status: number, input: SecondStepPageInput): FastifyReply {
  const target = cspSource(input.redirect)
  const scripts = input.passkey?.scripts
  return sendPage(reply, { status, title: SECOND_STEP_TITLE, body: secondStepPage(input), formTargets: target === null ? [] : [target], ...(scripts === undefined ? {} : { scripts }) })
}
