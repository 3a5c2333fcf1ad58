import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { readInteraction } from '../signin/browser.js'
import { completeSignIn, loginTarget, type LoginTarget } from '../signin/sign-in.js'
import { secondStepNeeded, showSecondStep } from '../signin/second-step.js'
import { AMR_PASSWORD, nextSignInStep } from '../mfa/assurance.js'
import { accountPageUrl } from '../account/account-page.js'
import type { AuthDeps } from '../runtime/deps.js'
import { singleParams, type Params } from '../http/form.js'
import { html, messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { LOGIN_BODY, formBody } from '../http/schemas.js'
import { sendLoginPage } from './authorize.js'
import { offerPasskeyLogin } from '../mfa/passkeys.js'
import { audit } from '../audit/trail.js'

/** One message for every credential failure: no user enumeration (DESIGN §3). */
export const LOGIN_FAILED_MESSAGE = 'The username or password is not correct.'

function invalidForm(reply: FastifyReply, status: number): FastifyReply {
  return sendPage(reply, {
    status,
    title: 'Sign-in expired',
    body: messagePage('error', 'This sign-in form has expired or is not valid.', 'Go back to the application and sign in again.'),
  })
}

/**
 * What a login form's POST starts with (POST /login, POST /login/passkey): a form body, the
 * pending login its cookie names (genuine, unexpired, the CSRF token matching), and where it
 * leads, checked against the client directory again; else the refusal, already sent.
 */
export async function pendingLogin(request: FastifyRequest, reply: FastifyReply, deps: AuthDeps, method?: string): Promise<{ params: Params; interactionId: string; target: LoginTarget } | { refused: FastifyReply }> {
  if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) return { refused: invalidForm(reply, 400) }
  let params: Params
  try {
    params = singleParams(request.body, 'login')
  } catch {
    return { refused: invalidForm(reply, 400) }
  }
  const check = readInteraction(request, deps, params.interaction, params.csrf)
  if (!check.ok) {
    request.log.info({ event: 'login.rejected', reason: check.reason, method, ip: request.ip }, 'login form rejected')
    return { refused: invalidForm(reply, check.reason === 'csrf' ? 403 : 400) }
  }
  try {
    const target = await loginTarget(deps, check.value)
    if (target === null) {
      request.log.info({ event: 'login.rejected', reason: 'client changed', method, client_id: 'request' in check.value ? check.value.request.clientId : undefined, ip: request.ip }, 'login form rejected')
      return { refused: invalidForm(reply, 400) }
    }
    return { params, interactionId: params.interaction!, target }
  } catch (err) {
    return { refused: sendServerFailure(request, reply, err, { log: 'login failed on the server side', message: 'Signing in is not possible right now.', hint: 'Go back to the application and try again in a moment.' }) }
  }
}

/**
 * POST /login: the login form's target. CSRF-protected by the pending-login cookie (signed,
 * SameSite=Lax) whose token must equal the form's; the pending authorization request comes from
 * that cookie and is checked against the client directory again. On success: a new login
 * session, its cookie, and the redirect to the client with a code, or, for a sign-in the device
 * verification page asked for, back to that page (RFC 8628 §3.3; nothing is approved there
 * until the user submits the code and allows it). A user with a TOTP or a passkey gets the
 * second step's page instead of a session (signin/second-step.ts, POST /login/second-factor).
 */
export async function loginRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const errorHandler = pageErrorHandler({ title: 'Sign-in expired', message: 'This sign-in form has expired or is not valid.', hint: 'Go back to the application and sign in again.' })
  app.post('/login', { schema: { body: formBody(LOGIN_BODY) }, errorHandler }, async (request: FastifyRequest, reply: FastifyReply) => {
    const pending = await pendingLogin(request, reply, deps)
    // A reply is thenable (it resolves once sent): never the value of an async function, so it rides in an object.
    if ('refused' in pending) return pending.refused
    const { params, interactionId, target } = pending
    try {
      const client = { id: target.clientId }
      const again = async (error: string): Promise<FastifyReply> =>
        sendLoginPage(reply, 400, { clientName: target.name, interaction: interactionId, csrf: params.csrf!, error, username: params.username, passkey: await offerPasskeyLogin(reply, deps, interactionId) }, target.redirect)
      const { username, password } = params
      if (username === undefined || password === undefined) return await again('Enter your username and password.')

      // Attempt limits, progressive delay, then the KDF (login-gate.ts); locked or wrong, the same page.
      const outcome = await deps.loginGate.authenticate({ users: deps.users, username, password, address: request.ip, clientId: client.id, log: request.log, metrics: deps.metrics, audit: deps.audit })
      if (!outcome.ok) return await again(LOGIN_FAILED_MESSAGE)
      const user = outcome.user

      // A TOTP or a passkey: no session yet, the second step first (signin/second-step.ts).
      const factors = await deps.factors.list(user.id)
      if (secondStepNeeded(factors)) {
        request.log.info({ event: 'login.second_step', client_id: client.id, sub: user.id, ip: request.ip }, 'password accepted; second step asked')
        const shown = await showSecondStep(reply, deps, { user, interactionId, interactionCsrf: params.csrf!, target, factors })
        return shown === null ? invalidForm(reply, 400) : shown.sent
      }
      // A client that requires a second factor (require_mfa), for a user who has none yet: no code.
      if (target.assurance !== undefined && nextSignInStep(AMR_PASSWORD, target.assurance.client, target.assurance.request, { hasSecondFactor: false }) === 'enrol_required') {
        request.log.info({ event: 'login.second_factor_missing', client_id: client.id, sub: user.id, ip: request.ip }, 'the client requires a second factor; the user has none')
        return sendPage(reply, {
          status: 403,
          title: 'Second factor required',
          body: html`<p class="error" role="alert">${target.name} requires a second factor, and your account has none yet.</p><p>Set up an authenticator app or a passkey on <a href="${accountPageUrl(deps.config)}">your account page</a>, then go back to the application and sign in again.</p>`,
        })
      }
      if (await completeSignIn(request, reply, deps, { user, amr: AMR_PASSWORD, target, interactionId })) {
        audit(request.log, deps.audit, { event: 'login.succeeded', client_id: client.id, sub: user.id, amr: [...AMR_PASSWORD], ip: request.ip }, 'login succeeded')
        return reply
      }
      return await again(LOGIN_FAILED_MESSAGE)
    } catch (err) {
      return sendServerFailure(request, reply, err, {
        log: 'login failed on the server side',
        message: 'Signing in is not possible right now.',
        hint: 'Go back to the application and try again in a moment.',
      })
    }
  })
}
