import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { currentSession, startDeviceInteraction } from '../signin/browser.js'
import type { LoginSession } from '../signin/sessions.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import { singleParams, type Params } from '../http/form.js'
import { messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { DEVICE_PARAMS, formBody } from '../http/schemas.js'
import { audit } from '../audit/trail.js'
import { formatUserCode, normalizeUserCode } from '../device/device-codes.js'
import {
  DEVICE_PAGE_NAME, clearConfirmation, readConfirmation, readEntry, sendConfirmPage, sendEntryPage, startConfirmation, startEntry,
} from '../device/verification-page.js'
import { sendLoginPage } from './authorize.js'
import { offerPasskeyLogin } from '../mfa/passkeys.js'

const WRONG_CODE = 'That code is not valid. Check the code on your device and try again.'

function expiredForm(reply: FastifyReply, status: number): FastifyReply {
  return sendPage(reply, { status, title: DEVICE_PAGE_NAME, body: messagePage('error', 'This form has expired or is not valid.', 'Open the page again and enter the code shown on your device.') })
}

function unavailable(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  return sendServerFailure(request, reply, err, {
    log: 'device verification failed on the server side',
    message: 'Connecting a device is not possible right now.',
    hint: 'Try again in a moment.',
  })
}

/**
 * GET|POST /device: the verification page of the device authorization grant (RFC 8628 §3.3). The
 * user must be signed in (the login session cookie); if not, the login form is shown, and the
 * sign-in returns here (signin/browser.ts: a pending login can return to this page). The user
 * enters the user code (or arrives with it from `verification_uri_complete`: pre-filled, never
 * approved by itself, §3.3.1), sees which client asks for which scopes, and allows or denies.
 *
 * Both forms are CSRF-protected pending forms (device/verification-page.ts) bound to the login
 * session they were shown to. Wrong codes are counted per login session and per client address
 * (§5.1; device/device-flow.ts) and lock the guesser out; each is logged `device.user_code_failed`.
 * The decision is one atomic step on the request (only a pending one moves), audited
 * `device.approved` or `device.denied`.
 */
export async function deviceRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  /** The signed-in, enabled user of this browser, or null. */
  const signedIn = async (request: FastifyRequest): Promise<{ session: LoginSession; user: User } | null> => {
    const session = await currentSession(request, deps)
    if (session === null) return null
    const user = await deps.users.findById(session.userId)
    return user === null || user.disabled ? null : { session, user }
  }

  /** Not signed in: the login form, returning here with the code the user came with. */
  const login = async (reply: FastifyReply, userCode: string | undefined): Promise<FastifyReply> => {
    const code = userCode === undefined ? undefined : normalizeUserCode(userCode)
    const interaction = startDeviceInteraction(reply, deps, code === null || code === undefined ? {} : { userCode: formatUserCode(code) })
    if (interaction === null) return expiredForm(reply, 400)
    return sendLoginPage(reply, 200, { clientName: DEVICE_PAGE_NAME, interaction: interaction.id, csrf: interaction.csrf, passkey: await offerPasskeyLogin(reply, deps, interaction.id) }, deps.config.issuer)
  }

  /** The code entry, with a fresh pending form for this session. */
  const entry = (reply: FastifyReply, status: number, who: { session: LoginSession; user: User }, userCode: string | undefined, error?: string): FastifyReply => {
    const started = startEntry(reply, deps, { sid: who.session.id })
    if (started === null) return expiredForm(reply, 400)
    return sendEntryPage(reply, status, { form: started.id, csrf: started.csrf, username: who.user.username, userCode, error })
  }

  const show = async (request: FastifyRequest, reply: FastifyReply, params: Params): Promise<FastifyReply> => {
    const who = await signedIn(request)
    if (who === null) return await login(reply, params.user_code)
    // §3.3.1: the code from verification_uri_complete is shown for the user to check and submit.
    const code = params.user_code === undefined ? null : normalizeUserCode(params.user_code)
    return entry(reply, 200, who, code === null ? undefined : formatUserCode(code))
  }

  /** The code-entry form's POST: count the attempt, look the code up, ask. */
  const submitted = async (request: FastifyRequest, reply: FastifyReply, params: Params): Promise<FastifyReply> => {
    const check = readEntry(request, deps, params.form, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'device.form_rejected', reason: check.reason, ip: request.ip }, 'device form rejected')
      return expiredForm(reply, check.reason === 'csrf' ? 403 : 400)
    }
    const who = await signedIn(request)
    if (who === null) return await login(reply, params.user_code)
    if (who.session.id !== check.value.sid) return entry(reply, 400, who, undefined, 'This form was opened for another sign-in. Enter the code again.')

    const guesses = deps.device.guesses
    const attempt = await guesses.attempt(`session:${who.session.id}`, request.ip)
    if (attempt.status !== 'admitted') {
      request.log.warn({ event: 'device.user_code_locked', scope: attempt.scope, sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'user code guessing locked out')
      const minutes = attempt.status === 'locked' ? Math.max(1, Math.ceil(attempt.retryAfterMs / 60_000)) : 1
      return sendPage(reply, {
        status: 429,
        title: 'Too many attempts',
        body: messagePage('error', 'Too many wrong codes were entered.', `Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`),
      })
    }
    const ticket = attempt.ticket
    let found: Awaited<ReturnType<typeof deps.device.codes.findByUserCode>> = null
    let clientName: string | undefined
    try {
      const code = params.user_code === undefined ? null : normalizeUserCode(params.user_code)
      found = code === null ? null : await deps.device.codes.findByUserCode(code)
      if (found !== null) {
        const client = await deps.clients.get(found.clientId)
        clientName = client === null ? undefined : (client.name ?? client.id)
        if (clientName === undefined) found = null
      }
    } catch (err) {
      await guesses.release(ticket).catch(() => undefined)
      throw err
    }
    if (found === null || clientName === undefined) {
      await guesses.failed(ticket)
      audit(request.log, deps.audit, { event: 'device.user_code_failed', sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'wrong user code')
      // What the user typed comes back only when it has the shape of a code (no reflected noise).
      const typed = params.user_code === undefined ? null : normalizeUserCode(params.user_code)
      return entry(reply, 400, who, typed === null ? undefined : formatUserCode(typed), WRONG_CODE)
    }
    await guesses.release(ticket)
    const started = startConfirmation(reply, deps, { sid: who.session.id, id: found.id, userCode: found.userCode, clientId: found.clientId })
    if (started === null) return expiredForm(reply, 400)
    request.log.info({ event: 'device.confirmation_shown', client_id: found.clientId, sub: who.user.id, device_request: found.id }, 'device request shown to the user')
    return sendConfirmPage(reply, { confirm: started.id, csrf: started.csrf, clientName, userCode: found.userCode, scope: found.scope })
  }

  /** The confirmation form's POST: the user's decision on the request they were shown. */
  const decided = async (request: FastifyRequest, reply: FastifyReply, params: Params): Promise<FastifyReply> => {
    const check = readConfirmation(request, deps, params.confirm, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'device.form_rejected', reason: check.reason, ip: request.ip }, 'device confirmation rejected')
      return expiredForm(reply, check.reason === 'csrf' ? 403 : 400)
    }
    const pending = check.value
    if (params.action !== 'approve' && params.action !== 'deny') return expiredForm(reply, 400)
    const who = await signedIn(request)
    if (who === null || who.session.id !== pending.sid) return expiredForm(reply, 400)
    clearConfirmation(reply, deps.config, params.confirm!)
    const approve = params.action === 'approve'
    const outcome = await deps.device.codes.decide(
      pending.userCode,
      pending.id,
      approve ? { approve: true, userId: who.user.id, authTime: who.session.authTime } : { approve: false, userId: who.user.id },
    )
    if (outcome !== 'approved' && outcome !== 'denied') {
      request.log.info({ event: 'device.decision_refused', outcome, client_id: pending.clientId, sub: who.user.id, device_request: pending.id }, 'device request no longer pending')
      return sendPage(reply, { status: 400, title: DEVICE_PAGE_NAME, body: messagePage('error', 'This code has expired or was already used.', 'Start again on your device to get a new code.') })
    }
    const fields = { client_id: pending.clientId, sub: who.user.id, session_id: who.session.id, device_request: pending.id, ip: request.ip }
    if (outcome === 'approved') {
      audit(request.log, deps.audit, { event: 'device.approved', ...fields }, 'device request approved')
      return sendPage(reply, { status: 200, title: 'Device connected', body: messagePage('info', 'Your device is now signed in.', 'You can close this window and return to your device.') })
    }
    audit(request.log, deps.audit, { event: 'device.denied', ...fields }, 'device request denied')
    return sendPage(reply, { status: 200, title: 'Access denied', body: messagePage('info', 'The device was not given access.', 'You can close this window.') })
  }

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    let params: Params
    try {
      const isForm = request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true
      if (request.method === 'POST' && !isForm) return expiredForm(reply, 400)
      params = singleParams(request.method === 'GET' ? request.query : request.body, 'device')
    } catch {
      return expiredForm(reply, 400)
    }
    try {
      if (request.method === 'GET') return await show(request, reply, params)
      if (params.confirm !== undefined) return await decided(request, reply, params)
      return await submitted(request, reply, params)
    } catch (err) {
      return unavailable(request, reply, err)
    }
  }
  const errorHandler = pageErrorHandler({ title: DEVICE_PAGE_NAME, message: 'This request cannot be processed.', hint: 'Open the page again and enter the code shown on your device.' })
  app.get('/device', { schema: { querystring: DEVICE_PARAMS }, errorHandler }, handler)
  app.post('/device', { schema: { body: formBody(DEVICE_PARAMS) }, errorHandler }, handler)
}

