import type { FastifyReply } from 'fastify'
import type { AuthConfig } from '../config.js'
import { cspSource, html, sendPage, type Html } from '../http/html.js'
import { secondStepUrl, type SecondStepMethods } from './second-step.js'

/**
 * The second step's page (signin/second-step.ts): plain forms that work without JavaScript, by
 * keyboard and on a phone. A code of the authenticator app (a numeric keyboard, and the one-time
 * code the phone may offer to fill in); "use a recovery code instead" as a second small form in a
 * <details> (opened when its code was the one refused); and, for a user with a passkey, the
 * slot `<section id="passkey-step">` that the passkeys lane fills.
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
}

export function secondStepPage(input: SecondStepPageInput): Html {
  const action = secondStepUrl(input.config)
  const hidden = html`<input type="hidden" name="step" value="${input.step}"><input type="hidden" name="csrf" value="${input.csrf}">`
  const err = input.error
  // An error about a form no longer shown (the last recovery code spent meanwhile) goes on top.
  const shown = { totp: input.methods.totp, recovery: input.methods.recovery, passkey: input.methods.passkey }
  const errorOf = (method: 'totp' | 'recovery' | 'passkey'): Html | false => err?.method === method && html`<p class="error" role="alert" id="${method}-error">${err.message}</p>`
  const orphan = err !== undefined && !shown[err.method] && html`<p class="error" role="alert">${err.message}</p>`
  const described = (method: 'totp' | 'recovery'): Html => (err?.method === method ? { html: ` aria-describedby="${method}-error" aria-invalid="true"` } : { html: '' })
  const totp =
    input.methods.totp &&
    html`<form method="post" action="${action}">${hidden}<label for="code">Code from your authenticator app</label><input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="9" autofocus${described('totp')}><button type="submit">Verify</button></form>`
  // The passkeys lane fills this slot (WebAuthn needs its own script); empty until then.
  const passkey = input.methods.passkey && html`<section id="passkey-step" aria-label="Sign in with a passkey">${errorOf('passkey')}</section>`
  const recoveryForm = html`<form method="post" action="${action}">${hidden}<label for="recovery_code">Recovery code</label><input id="recovery_code" name="recovery_code" type="text" autocomplete="off" autocapitalize="none" spellcheck="false" required maxlength="32"${input.methods.totp ? '' : { html: ' autofocus' }}${described('recovery')}><button type="submit">Use recovery code</button></form>`
  const recovery =
    input.methods.recovery &&
    (input.methods.totp || input.methods.passkey
      ? html`<details${err?.method === 'recovery' ? { html: ' open' } : ''}><summary>Use a recovery code instead</summary>${errorOf('recovery')}${recoveryForm}</details>`
      : html`${errorOf('recovery')}${recoveryForm}`)
  const none = !input.methods.totp && !input.methods.passkey && !input.methods.recovery && html`<p class="error" role="alert">No second factor can be used here. Ask your administrator to reset it.</p>`
  return html`<p>to continue to <strong>${input.clientName}</strong></p>${orphan}${errorOf('totp')}${totp}${passkey}${recovery}${none}`
}

export function sendSecondStepPage(reply: FastifyReply, status: number, input: SecondStepPageInput): FastifyReply {
  const target = cspSource(input.redirect)
  return sendPage(reply, { status, title: SECOND_STEP_TITLE, body: secondStepPage(input), formTargets: target === null ? [] : [target] })
}
