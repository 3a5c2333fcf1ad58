import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { clearSessionCookie, currentSession, issuerPath, sessionEndDeps, startAccountInteraction } from '../signin/browser.js'
import type { LoginSession } from '../signin/sessions.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import { replacePassword } from '../directory/passwords.js'
import { endOtherUserSessions, endSessions, endUserSessions } from '../logout/end-sessions.js'
import { singleParams, type Params } from '../http/form.js'
import { html, messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { ACCOUNT_BODY, ACCOUNT_QUERY, formBody } from '../http/schemas.js'
import { audit } from '../audit/trail.js'
import { ACCOUNT_PAGE_NAME, NOTICES, accountPageUrl, deviceName, readAccountForm, sendAccountPage, startAccountForm, type AccountNotice } from '../account/account-page.js'
import { signedInRecently } from '../account/recent-sign-in.js'
import type { PasskeyFactor } from '../mfa/factors.js'
import { accountPasskeysMarkup, clearCeremony, enrolPasskey, offerPasskeyEnrolment, offerPasskeyLogin, readCeremony, relyingParty } from '../mfa/passkeys.js'
import { sendLoginPage } from './authorize.js'
import { LOGIN_FAILED_MESSAGE } from './login.js'

function expiredForm(reply: FastifyReply, status: number): FastifyReply {
  return sendPage(reply, { status, title: ACCOUNT_PAGE_NAME, body: messagePage('error', 'This form has expired or is not valid.', 'Open your account page again.') })
}

function unavailable(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  return sendServerFailure(request, reply, err, { log: 'account page failed on the server side', message: 'Your account page is not available right now.', hint: 'Try again in a moment.' })
}

function isNotice(v: string | undefined): v is AccountNotice {
  return v !== undefined && Object.hasOwn(NOTICES, v)
}

/**
 * GET /account and its forms (DESIGN §10.5): the signed-in user's name, live login sessions and
 * password. Not signed in: the login form, which returns here (signin/browser.ts). Every form is
 * CSRF-protected by a pending form bound to the login session it was shown to
 * (account/account-page.ts). Signing a session out ends it as /logout does (logout/end-sessions.ts:
 * its families revoked and announced, its clients told by back-channel logout); only the user's
 * own sessions. A password change needs the current password, checked through the login gate
 * (counted and locked out like logins), the policy of `users set-password`, and ends the user's
 * other sessions and families, audited `user.password_changed`. Each form answers 303 back here.
 */
export async function accountRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const signedIn = async (request: FastifyRequest): Promise<{ session: LoginSession; user: User } | null> => {
    const session = await currentSession(request, deps)
    if (session === null) return null
    const user = await deps.users.findById(session.userId)
    return user === null || user.disabled ? null : { session, user }
  }

  /** The login form, returning here; `root` when answered below /account/ (its forms then post to absolute paths). */
  const login = async (reply: FastifyReply, root?: string): Promise<FastifyReply> => {
    const interaction = startAccountInteraction(reply, deps)
    if (interaction === null) return expiredForm(reply, 400)
    const passkey = await offerPasskeyLogin(reply, deps, interaction.id)
    return sendLoginPage(reply, 200, { clientName: ACCOUNT_PAGE_NAME, interaction: interaction.id, csrf: interaction.csrf, ...(root === undefined ? {} : { root }), ...(passkey === undefined ? {} : { passkey }) }, deps.config.issuer)
  }

  const page = async (reply: FastifyReply, status: number, who: { session: LoginSession; user: User }, extra: { notice?: AccountNotice; passwordError?: string } = {}): Promise<FastifyReply> => {
    const started = startAccountForm(reply, deps, { sid: who.session.id })
    if (started === null) return expiredForm(reply, 400)
    const sessions = await deps.sessions.listByUser(who.user.id)
    // Passkeys (mfa/passkeys.ts): the list, and "Add a passkey" (a ceremony only with a recent sign-in).
    const passkeys = (await deps.factors.list(who.user.id)).filter((f): f is PasskeyFactor => f.kind === 'passkey')
    const offer = await offerPasskeyEnrolment(reply, deps, who.user, who.session.id, signedInRecently(who.session, deps.clock()))
    const hidden = html`<input type="hidden" name="form" value="${started.id}"><input type="hidden" name="csrf" value="${started.csrf}">`
    const markup = accountPasskeysMarkup({ hidden, passkeys, offer, root: issuerPath(deps.config) })
    return sendAccountPage(reply, status, { form: started.id, csrf: started.csrf, user: who.user, current: who.session, sessions, ...extra, passkeys: { markup, ...(offer === undefined ? {} : { scripts: offer.scripts }) } })
  }

  const back = (reply: FastifyReply, notice: AccountNotice): FastifyReply => reply.code(303).header('cache-control', 'no-store').header('location', accountPageUrl(deps.config, notice)).send()

  /** A form's POST: the form genuine and shown to this very sign-in, else refused (nothing done; the refusal already sent). */
  const checked = async (request: FastifyRequest, reply: FastifyReply): Promise<{ params: Params; who: { session: LoginSession; user: User } } | { refused: FastifyReply }> => {
    let params: Params
    try {
      if (request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') !== true) return { refused: expiredForm(reply, 400) }
      params = singleParams(request.body, 'account')
    } catch {
      return { refused: expiredForm(reply, 400) }
    }
    const check = readAccountForm(request, deps, params.form, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'account.form_rejected', reason: check.reason, ip: request.ip }, 'account form rejected')
      return { refused: expiredForm(reply, check.reason === 'csrf' ? 403 : 400) }
    }
    const who = await signedIn(request)
    if (who === null || who.session.id !== check.value.sid) {
      request.log.info({ event: 'account.form_rejected', reason: 'session', ip: request.ip }, 'account form rejected')
      return { refused: expiredForm(reply, 403) }
    }
    return { params, who }
  }

  const route = (handler: (request: FastifyRequest, reply: FastifyReply, params: Params, who: { session: LoginSession; user: User }) => Promise<FastifyReply>) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      try {
        const c = await checked(request, reply)
        // A reply is thenable (it resolves once sent): never the value of an async function, so it rides in an object.
        if ('refused' in c) return c.refused
        return await handler(request, reply, c.params, c.who)
      } catch (err) {
        return unavailable(request, reply, err)
      }
    }

  const errorHandler = pageErrorHandler({ title: ACCOUNT_PAGE_NAME, message: 'This request cannot be processed.', hint: 'Open your account page again.' })

  app.get('/account', { schema: { querystring: ACCOUNT_QUERY }, errorHandler }, async (request, reply) => {
    try {
      const who = await signedIn(request)
      if (who === null) return await login(reply)
      const notice = (request.query as Record<string, unknown>).notice
      return await page(reply, 200, who, isNotice(typeof notice === 'string' ? notice : undefined) ? { notice: notice as AccountNotice } : {})
    } catch (err) {
      return unavailable(request, reply, err)
    }
  })

  /** Signs one of the user's own sessions out; another user's session id (or an unknown one) is refused. */
  app.post('/account/sessions/end', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, params, who) => {
    const own = params.session === undefined ? [] : (await deps.sessions.listByUser(who.user.id)).filter((s) => s.id === params.session)
    if (own.length === 0) {
      request.log.info({ event: 'account.form_rejected', reason: 'not_own_session', sub: who.user.id, ip: request.ip }, 'account form rejected')
      return sendPage(reply, { status: 400, title: ACCOUNT_PAGE_NAME, body: messagePage('error', 'That session is not one of yours or has already ended.', 'Open your account page again.') })
    }
    await endSessions(sessionEndDeps(deps, request.log), [own[0]!.id], 'logout')
    if (own[0]!.id === who.session.id) {
      clearSessionCookie(reply, deps.config)
      return sendPage(reply, { status: 200, title: 'Signed out', body: messagePage('info', 'You have been signed out.') })
    }
    return back(reply, 'signed-out')
  }))

  /** Every session and family of the user, this one included. */
  app.post('/account/sessions/end-all', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, _params, who) => {
    await endUserSessions(sessionEndDeps(deps, request.log), who.user.id, 'logout')
    clearSessionCookie(reply, deps.config)
    return sendPage(reply, { status: 200, title: 'Signed out', body: messagePage('info', 'You have been signed out everywhere.') })
  }))

  app.post('/account/password', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, params, who) => {
    const again = async (error: string): Promise<FastifyReply> => await page(reply, 400, who, { passwordError: error })
    const { current_password: current, new_password: next, new_password_again: repeated } = params
    if (current === undefined || next === undefined || repeated === undefined) return await again('Enter your current password and the new one twice.')
    // The current password through the login gate: counted and locked out like a login.
    const outcome = await deps.loginGate.authenticate({ users: deps.users, username: who.user.username, password: current, address: request.ip, log: request.log, metrics: deps.metrics, audit: deps.audit })
    if (!outcome.ok || outcome.user.id !== who.user.id) return await again(outcome.ok ? LOGIN_FAILED_MESSAGE : 'The current password is not correct.')
    if (next !== repeated) return await again('The new passwords do not match.')
    const replaced = await replacePassword(deps.users, who.user.id, next)
    if ('problem' in replaced) return await again(`The new password is not allowed: ${replaced.problem}.`)
    if (replaced.user === null) return expiredForm(reply, 400)
    const ended = await endOtherUserSessions(sessionEndDeps(deps, request.log), who.user.id, who.session.id, 'password_change')
    audit(request.log, deps.audit, { event: 'user.password_changed', sub: who.user.id, session_id: who.session.id, sessions_ended: ended.sessions.length, families_revoked: ended.families.length, ip: request.ip }, 'password changed by the user')
    return back(reply, 'password-changed')
  }))

  /**
   * Adds a passkey (DESIGN §10.5): needs a recent sign-in of this session (else the login form,
   * which returns here), then the registration ceremony's cookie bound to this session, then the
   * library's verification (mfa/passkeys.ts enrolPasskey). Audited `mfa.enrolled` with the kind
   * and the factor id, never the key. Answers 303 back to the page with a notice.
   */
  app.post('/account/passkeys', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, params, who) => {
    clearCeremony(reply, deps, 'register', params.ceremony)
    if (!signedInRecently(who.session, deps.clock())) return await login(reply, issuerPath(deps.config))
    const rp = relyingParty(deps.config)
    if (rp === null) return sendPage(reply, { status: 404, title: ACCOUNT_PAGE_NAME, body: messagePage('error', 'Passkeys are not available on this server.', 'Open your account page again.') })
    const ceremony = readCeremony(request, deps, 'register', params, who.session.id)
    if (ceremony === null) {
      request.log.info({ event: 'account.form_rejected', reason: 'ceremony', sub: who.user.id, ip: request.ip }, 'passkey ceremony missing or expired')
      return back(reply, 'passkey-failed')
    }
    const enrolled = await enrolPasskey(deps, rp, who.user, params.credential, ceremony, `Passkey on ${deviceName(request.headers['user-agent'])}`)
    if (!enrolled.ok) {
      request.log.info({ event: 'account.passkey_refused', reason: enrolled.reason, sub: who.user.id, ip: request.ip }, 'passkey not added')
      return back(reply, enrolled.reason === 'exists' ? 'passkey-exists' : 'passkey-failed')
    }
    audit(request.log, deps.audit, { event: 'mfa.enrolled', kind: 'passkey', factor_id: enrolled.factor.id, sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'passkey added')
    return back(reply, 'passkey-added')
  }))

  /** Removes one of the user's own passkeys (a recent sign-in needed, as for adding one); audited `mfa.removed`. */
  app.post('/account/passkeys/remove', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, params, who) => {
    if (!signedInRecently(who.session, deps.clock())) return await login(reply, issuerPath(deps.config))
    const own = params.factor === undefined ? undefined : (await deps.factors.list(who.user.id)).find((f) => f.id === params.factor && f.kind === 'passkey')
    const removed = own === undefined ? null : await deps.factors.remove(who.user.id, own.id)
    if (removed === null) {
      request.log.info({ event: 'account.form_rejected', reason: 'not_own_passkey', sub: who.user.id, ip: request.ip }, 'account form rejected')
      return sendPage(reply, { status: 400, title: ACCOUNT_PAGE_NAME, body: messagePage('error', 'That passkey is not one of yours or has already been removed.', 'Open your account page again.') })
    }
    audit(request.log, deps.audit, { event: 'mfa.removed', kind: 'passkey', factor_id: removed.id, sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'passkey removed')
    return back(reply, 'passkey-removed')
  }))
}
