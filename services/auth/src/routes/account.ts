import { randomBytes } from 'node:crypto'
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
import { ACCOUNT_PAGE_NAME, NOTICES, accountPageUrl, clearAccountForm, deviceName, readAccountForm, sendAccountPage, sendRecoveryCodesPage, sendTotpEnrolmentPage, startAccountForm, type AccountNotice, type PendingAccountForm } from '../account/account-page.js'
import { signedInRecently } from '../account/recent-sign-in.js'
import type { PasskeyFactor, RecoveryCodesFactor, TotpFactor } from '../mfa/factors.js'
import { accountPasskeysMarkup, clearCeremony, enrolPasskey, offerPasskeyEnrolment, offerPasskeyLogin, readCeremony, relyingParty } from '../mfa/passkeys.js'
import { newTotpSecret, normaliseTotpCode, totpQrSvg, totpUri, verifyTotp } from '../mfa/totp.js'
import { openSecret, sealSecret } from '../mfa/secret-seal.js'
import { newRecoveryCodes } from '../mfa/recovery-codes.js'
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
 *
 * Second factors: set up an authenticator app (a QR code and the secret, then a first code
 * confirms it), recovery codes (shown once, a new set replaces the old), removing any of the
 * user's own factors. Each needs a recent sign-in of this session (account/recent-sign-in.ts),
 * else the login form asks again; audited `mfa.enrolled`, `mfa.recovery_codes_generated`, `mfa.removed`.
 */
export async function accountRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const signedIn = async (request: FastifyRequest): Promise<{ session: LoginSession; user: User } | null> => {
    const session = await currentSession(request, deps)
    if (session === null) return null
    const user = await deps.users.findById(session.userId)
    return user === null || user.disabled ? null : { session, user }
  }

  /** The login form, returning here; `root` when answered below /account/ (its forms then post to absolute paths). */
  const login = async (reply: FastifyReply, options: { error?: string; root?: string } = {}): Promise<FastifyReply> => {
    const interaction = startAccountInteraction(reply, deps)
    if (interaction === null) return expiredForm(reply, 400)
    const passkey = await offerPasskeyLogin(reply, deps, interaction.id)
    const { error, root } = options
    return sendLoginPage(reply, 200, { clientName: ACCOUNT_PAGE_NAME, interaction: interaction.id, csrf: interaction.csrf, ...(error === undefined ? {} : { error }), ...(root === undefined ? {} : { root }), ...(passkey === undefined ? {} : { passkey }) }, deps.config.issuer)
  }

  const page = async (reply: FastifyReply, status: number, who: { session: LoginSession; user: User }, extra: { notice?: AccountNotice; passwordError?: string; factorError?: string } = {}): Promise<FastifyReply> => {
    const started = startAccountForm(reply, deps, { sid: who.session.id })
    if (started === null) return expiredForm(reply, 400)
    const sessions = await deps.sessions.listByUser(who.user.id)
    const factors = await deps.factors.list(who.user.id)
    // Passkeys (mfa/passkeys.ts): their list, and "Add a passkey" (a ceremony only with a recent sign-in).
    const passkeys = factors.filter((f): f is PasskeyFactor => f.kind === 'passkey')
    const offer = await offerPasskeyEnrolment(reply, deps, who.user, who.session.id, signedInRecently(who.session, deps.clock()))
    const hidden = html`<input type="hidden" name="form" value="${started.id}"><input type="hidden" name="csrf" value="${started.csrf}">`
    const markup = accountPasskeysMarkup({ hidden, passkeys, offer, root: issuerPath(deps.config) })
    return sendAccountPage(reply, status, deps.config, { form: started.id, csrf: started.csrf, user: who.user, current: who.session, sessions, factors, ...extra, passkeys: { markup, ...(offer === undefined ? {} : { scripts: offer.scripts }) } })
  }

  const back = (reply: FastifyReply, notice: AccountNotice): FastifyReply => reply.code(303).header('cache-control', 'no-store').header('location', accountPageUrl(deps.config, notice)).send()

  /** A form's POST: the form genuine and shown to this very sign-in, else refused (nothing done; the refusal already sent). */
  const checked = async (request: FastifyRequest, reply: FastifyReply): Promise<{ params: Params; who: { session: LoginSession; user: User }; form: PendingAccountForm } | { refused: FastifyReply }> => {
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
    return { params, who, form: check.value }
  }

  type Handler = (request: FastifyRequest, reply: FastifyReply, params: Params, who: { session: LoginSession; user: User }, form: PendingAccountForm) => Promise<FastifyReply>
  const route = (handler: Handler) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      try {
        const c = await checked(request, reply)
        // A reply is thenable (it resolves once sent): never the value of an async function, so it rides in an object.
        if ('refused' in c) return c.refused
        return await handler(request, reply, c.params, c.who, c.form)
      } catch (err) {
        return unavailable(request, reply, err)
      }
    }

  /**
   * A form that changes how the user signs in (second factors): as `route`, and only within
   * RECENT_SIGN_IN_SECONDS of this session's last sign-in (account/recent-sign-in.ts); older, the
   * login form asks for the password (and second step) again, then returns to the page. Nothing is done.
   */
  const recentRoute = (handler: Handler) =>
    route(async (request, reply, params, who, form) => {
      if (!signedInRecently(who.session, deps.clock())) {
        request.log.info({ event: 'account.reauthentication_required', sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'second factors need a recent sign-in')
        return await login(reply, { error: 'Sign in again to change your second factors.', root: issuerPath(deps.config) })
      }
      return await handler(request, reply, params, who, form)
    })

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

  // --- second factors (DESIGN §10.5) ---------------------------------------------------------

  /**
   * Adds a passkey (DESIGN §10.5): needs a recent sign-in of this session (else the login form,
   * which returns here), then the registration ceremony's cookie bound to this session, then the
   * library's verification (mfa/passkeys.ts enrolPasskey). Audited `mfa.enrolled` with the kind
   * and the factor id, never the key. Answers 303 back to the page with a notice.
   */
  app.post('/account/passkeys', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, params, who) => {
    clearCeremony(reply, deps, 'register', params.ceremony)
    if (!signedInRecently(who.session, deps.clock())) return await login(reply, { error: 'Sign in again to change your second factors.', root: issuerPath(deps.config) })
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
    // Sessions signed in without it (a stolen password's too) end, and their refresh tokens.
    const ended = await endOtherUserSessions(sessionEndDeps(deps, request.log), who.user.id, who.session.id, 'factor_added')
    audit(request.log, deps.audit, { event: 'mfa.enrolled', kind: 'passkey', factor_id: enrolled.factor.id, sub: who.user.id, session_id: who.session.id, sessions_ended: ended.sessions.length, families_revoked: ended.families.length, ip: request.ip }, 'passkey added')
    return back(reply, 'passkey-added')
  }))

  /** Removes one of the user's own passkeys (a recent sign-in needed, as for adding one); audited `mfa.removed`. */
  app.post('/account/passkeys/remove', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, route(async (request, reply, params, who) => {
    if (!signedInRecently(who.session, deps.clock())) return await login(reply, { error: 'Sign in again to change your second factors.', root: issuerPath(deps.config) })
    const own = params.factor === undefined ? undefined : (await deps.factors.list(who.user.id)).find((f) => f.id === params.factor && f.kind === 'passkey')
    const removed = own === undefined ? null : await deps.factors.remove(who.user.id, own.id)
    if (removed === null) {
      request.log.info({ event: 'account.form_rejected', reason: 'not_own_passkey', sub: who.user.id, ip: request.ip }, 'account form rejected')
      return sendPage(reply, { status: 400, title: ACCOUNT_PAGE_NAME, body: messagePage('error', 'That passkey is not one of yours or has already been removed.', 'Open your account page again.') })
    }
    audit(request.log, deps.audit, { event: 'mfa.removed', kind: 'passkey', factor_id: removed.id, sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'passkey removed')
    return back(reply, 'passkey-removed')
  }))


  const enrolmentPage = async (reply: FastifyReply, status: number, user: User, form: { id: string; csrf: string }, secret: string, error?: string): Promise<FastifyReply> => {
    const qrSvg = await totpQrSvg(totpUri(secret, deps.config.issuer, user.username))
    return sendTotpEnrolmentPage(reply, status, deps.config, { form: form.id, csrf: form.csrf, secret, qrSvg, ...(error === undefined ? {} : { error }) })
  }

  /**
   * An authenticator app, step one: a new secret, sealed into the enrolment's own pending form
   * (never in a hidden field), shown as a QR code and as text. Nothing is stored yet.
   */
  app.post('/account/totp/start', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, recentRoute(async (_request, reply, _params, who) => {
    if ((await deps.factors.list(who.user.id)).some((f) => f.kind === 'totp')) return await page(reply, 400, who, { factorError: 'You already have an authenticator app. Remove it first to set up another one.' })
    const secret = newTotpSecret()
    const started = startAccountForm(reply, deps, { sid: who.session.id, totp: sealSecret(deps.config.cookieSecrets, secret, who.user.id) })
    if (started === null) return expiredForm(reply, 400)
    return await enrolmentPage(reply, 200, who.user, started, secret)
  }))

  /**
   * Step two: a first code of the app. Only then does the factor exist, with that code's step
   * already spent (it cannot sign in too). Audited `mfa.enrolled`.
   */
  app.post('/account/totp/confirm', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, recentRoute(async (request, reply, params, who, form) => {
    const secret = form.totp === undefined ? null : openSecret(deps.config.cookieSecrets, form.totp, who.user.id)
    if (secret === null) return expiredForm(reply, 400)
    const now = deps.clock()
    const step = params.code === undefined ? null : verifyTotp(secret, params.code, now)
    if (step === null) {
      const message = params.code !== undefined && normaliseTotpCode(params.code) !== null ? 'That code is not correct. Check the time on your phone and try the next code.' : 'Enter the 6-digit code shown in the app.'
      return await enrolmentPage(reply, 400, who.user, { id: params.form!, csrf: params.csrf! }, secret, message)
    }
    const factor: TotpFactor = { id: newFactorId(), userId: who.user.id, kind: 'totp', label: 'Authenticator app', createdAt: now, sealedSecret: sealSecret(deps.config.cookieSecrets, secret, who.user.id), lastStep: step }
    if ((await deps.factors.add(factor)) !== 'added') return await page(reply, 400, who, { factorError: 'You already have an authenticator app. Remove it first to set up another one.' })
    clearAccountForm(reply, deps.config, params.form!)
    // Sessions signed in without it (a stolen password's too) end, and their refresh tokens.
    const ended = await endOtherUserSessions(sessionEndDeps(deps, request.log), who.user.id, who.session.id, 'factor_added')
    audit(request.log, deps.audit, { event: 'mfa.enrolled', kind: 'totp', factor_id: factor.id, sub: who.user.id, session_id: who.session.id, sessions_ended: ended.sessions.length, families_revoked: ended.families.length, ip: request.ip }, 'second factor enrolled')
    return back(reply, 'totp-enrolled')
  }))

  /** Removes one of the user's own factors (any kind; passkeys too); another's id, or an unknown one, is refused. */
  app.post('/account/factors/remove', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, recentRoute(async (request, reply, params, who) => {
    const removed = params.factor === undefined ? null : await deps.factors.remove(who.user.id, params.factor)
    if (removed === null) {
      request.log.info({ event: 'account.form_rejected', reason: 'not_own_factor', sub: who.user.id, ip: request.ip }, 'account form rejected')
      return sendPage(reply, { status: 400, title: ACCOUNT_PAGE_NAME, body: messagePage('error', 'That second factor is not one of yours or has already been removed.', 'Open your account page again.') })
    }
    audit(request.log, deps.audit, { event: 'mfa.removed', kind: removed.kind, factor_id: removed.id, sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'second factor removed')
    return back(reply, 'factor-removed')
  }))

  /** A new set of recovery codes, replacing any old one; shown on the answer page once, kept as digests. */
  app.post('/account/recovery-codes', { schema: { body: formBody(ACCOUNT_BODY) }, errorHandler }, recentRoute(async (request, reply, _params, who) => {
    const { codes, hashes } = newRecoveryCodes()
    const replaced = (await deps.factors.list(who.user.id)).some((f) => f.kind === 'recovery')
    const factor: RecoveryCodesFactor = { id: newFactorId(), userId: who.user.id, kind: 'recovery', label: 'Recovery codes', createdAt: deps.clock(), codeHashes: hashes, total: hashes.length }
    await deps.factors.replaceRecoveryCodes(factor)
    audit(request.log, deps.audit, { event: 'mfa.recovery_codes_generated', kind: 'recovery', factor_id: factor.id, count: hashes.length, replaced, sub: who.user.id, session_id: who.session.id, ip: request.ip }, 'recovery codes generated')
    return sendRecoveryCodesPage(reply, deps.config, codes)
  }))
}

/** A factor's id: random, url-safe (mfa/factors.ts). */
function newFactorId(): string {
  return randomBytes(16).toString('base64url')
}
