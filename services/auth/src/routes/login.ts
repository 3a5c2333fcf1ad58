import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { clearInteraction, currentSession, endSession, readInteraction, redirectWithCode, setSessionCookie, type Interaction } from '../signin/browser.js'
import type { LoginSession } from '../signin/sessions.js'
import type { AuthDeps } from '../runtime/deps.js'
import { singleParams, type Params } from '../http/form.js'
import { messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { LOGIN_BODY, formBody } from '../http/schemas.js'
import { sendLoginPage } from './authorize.js'
import { DEVICE_PAGE_NAME, devicePageUrl } from '../device/verification-page.js'
import { audit } from '../audit/trail.js'
import { ACCOUNT_PAGE_NAME, accountPageUrl } from '../account/account-page.js'

/** One message for every credential failure: no user enumeration (DESIGN §3). */
export const LOGIN_FAILED_MESSAGE = 'The username or password is not correct.'

function invalidForm(reply: FastifyReply, status: number): FastifyReply {
  return sendPage(reply, {
    status,
    title: 'Sign-in expired',
    body: messagePage('error', 'This sign-in form has expired or is not valid.', 'Go back to the application and sign in again.'),
  })
}

/** Where a pending login leads: the client it signs in to (if any), the name the form shows, and what follows a sign-in. */
interface LoginTarget {
  clientId?: string
  name: string
  /** The URL the answer to the form's POST redirects to (the page's CSP form-action must allow it). */
  redirect: string
  finish(reply: FastifyReply, session: LoginSession): Promise<FastifyReply>
}

/**
 * The pending authorization request, checked against the client directory again (null when the
 * client changed meanwhile), or the device verification page to return to.
 */
async function loginTarget(deps: AuthDeps, pending: Interaction): Promise<LoginTarget | null> {
  if ('request' in pending) {
    const req = pending.request
    const client = await deps.clients.get(req.clientId)
    if (client === null || !client.grantTypes.has('authorization_code') || !client.redirectUris.includes(req.redirectUri)) return null
    return { clientId: client.id, name: client.name ?? client.id, redirect: req.redirectUri, finish: async (reply, session) => await redirectWithCode(reply, deps, req, session, 303) }
  }
  if ('account' in pending) {
    const redirect = accountPageUrl(deps.config)
    return { name: ACCOUNT_PAGE_NAME, redirect, finish: async (reply) => reply.code(303).header('cache-control', 'no-store').header('location', redirect).send() }
  }
  const redirect = devicePageUrl(deps.config, pending.device.userCode)
  // 303: the browser follows with a GET of the page, where the user submits the code themself.
  return { name: DEVICE_PAGE_NAME, redirect, finish: async (reply) => reply.code(303).header('cache-control', 'no-store').header('location', redirect).send() }
}

/**
 * POST /login: the login form's target. CSRF-protected by the pending-login cookie (signed,
 * SameSite=Lax) whose token must equal the form's; the pending authorization request comes from
 * that cookie and is checked against the client directory again. On success: a new login
 * session, its cookie, and the redirect to the client with a code, or, for a sign-in the device
 * verification page asked for, back to that page (RFC 8628 §3.3; nothing is approved there
 * until the user submits the code and allows it).
 */
export async function loginRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const errorHandler = pageErrorHandler({ title: 'Sign-in expired', message: 'This sign-in form has expired or is not valid.', hint: 'Go back to the application and sign in again.' })
  app.post('/login', { schema: { body: formBody(LOGIN_BODY) }, errorHandler }, async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) return invalidForm(reply, 400)
    let params: Params
    try {
      params = singleParams(request.body, 'login')
    } catch {
      return invalidForm(reply, 400)
    }
    const check = readInteraction(request, deps, params.interaction, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'login.rejected', reason: check.reason, ip: request.ip }, 'login form rejected')
      return invalidForm(reply, check.reason === 'csrf' ? 403 : 400)
    }
    const interactionId = params.interaction!
    try {
      const target = await loginTarget(deps, check.value)
      if (target === null) {
        request.log.info({ event: 'login.rejected', reason: 'client changed', client_id: 'request' in check.value ? check.value.request.clientId : undefined, ip: request.ip }, 'login form rejected')
        return invalidForm(reply, 400)
      }
      const client = { id: target.clientId }
      const again = (error: string): FastifyReply =>
        sendLoginPage(reply, 400, { clientName: target.name, interaction: interactionId, csrf: params.csrf!, error, username: params.username }, target.redirect)
      const { username, password } = params
      if (username === undefined || password === undefined) return again('Enter your username and password.')

      // Attempt limits, progressive delay, then the KDF (login-gate.ts); locked or wrong, the same page.
      const outcome = await deps.loginGate.authenticate({ users: deps.users, username, password, address: request.ip, clientId: client.id, log: request.log, metrics: deps.metrics, audit: deps.audit })
      if (!outcome.ok) return again(LOGIN_FAILED_MESSAGE)
      const user = outcome.user
      audit(request.log, deps.audit, { event: 'login.succeeded', client_id: client.id, sub: user.id, ip: request.ip }, 'login succeeded')

      // A fresh secret on every login (session fixation); the same public id when the same user
      // signs in again, so logout still reaches the families started before.
      const previous = await currentSession(request, deps)
      let reuseId: string | undefined
      if (previous !== null && previous.userId === user.id) reuseId = previous.id
      else if (previous !== null) await endSession(deps, request.log, previous.id, 'replaced')
      const { session, token } = await deps.sessions.start({
        userId: user.id,
        authTime: Math.floor(deps.clock() / 1000),
        reuseId,
        // What `gatehouse sessions list` shows to tell the user's devices apart.
        userAgent: request.headers['user-agent'],
        address: request.ip,
      })
      // A password change or disable that ran after the check above ended the user's sessions
      // before this one existed: look again (uncached, by name), so no session outlives it.
      const now = await deps.users.findByUsername(user.username)
      if (now === null || now.id !== user.id || now.disabled || now.passwordHash !== user.passwordHash) {
        await endSession(deps, request.log, session.id, now === null ? 'user_deleted' : now.disabled ? 'user_disabled' : 'password_change')
        request.log.warn({ event: 'login.superseded', client_id: client.id, sub: user.id, ip: request.ip }, 'the user changed during the login: no session')
        return again(LOGIN_FAILED_MESSAGE)
      }
      setSessionCookie(reply, deps.config, token)
      clearInteraction(reply, deps.config, interactionId)
      // 303: the browser follows with a GET, never re-posting the password (RFC 9110 §15.4.4).
      return await target.finish(reply, session)
    } catch (err) {
      return sendServerFailure(request, reply, err, {
        log: 'login failed on the server side',
        message: 'Signing in is not possible right now.',
        hint: 'Go back to the application and try again in a moment.',
      })
    }
  })
}
