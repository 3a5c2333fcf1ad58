import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { issuerPath } from '../signin/browser.js'
import { completeSignIn } from '../signin/sign-in.js'
import type { AuthDeps } from '../runtime/deps.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { LOGIN_PASSKEY_BODY, formBody } from '../http/schemas.js'
import { audit } from '../audit/trail.js'
import { passkeyAmr } from '../mfa/assurance.js'
import { checkAssertion, clearCeremony, offerPasskeyLogin, readCeremony, relyingParty } from '../mfa/passkeys.js'
import { sendLoginPage } from './authorize.js'
import { pendingLogin } from './login.js'

/** One message for every refused passkey: which check failed is only in the audit trail. */
export const PASSKEY_LOGIN_FAILED_MESSAGE = 'Signing in with that passkey did not work. Try again, or sign in with your password.'

/**
 * POST /login/passkey: username-less sign-in with a passkey (DESIGN §10.5), the login page's
 * "Sign in with a passkey" form. The pending login and its CSRF token are checked as POST /login
 * checks them; the challenge comes from the ceremony's own cookie, bound to that pending login
 * (mfa/passkeys.ts). The passkey is found by its credential id and verified (mfa/passkeys.ts
 * checkAssertion); its owner must exist and not be disabled. Then the sign-in ends as every
 * sign-in does (completeSignIn), with amr `hwk|swk user mfa`. A refusal shows the login page
 * again with one generic message, audited `mfa.failed` (reason wrong, replayed or unknown).
 */
export async function loginPasskeyRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const errorHandler = pageErrorHandler({ title: 'Sign-in expired', message: 'This sign-in form has expired or is not valid.', hint: 'Go back to the application and sign in again.' })
  app.post('/login/passkey', { schema: { body: formBody(LOGIN_PASSKEY_BODY) }, errorHandler }, async (request: FastifyRequest, reply: FastifyReply) => {
    const pending = await pendingLogin(request, reply, deps, 'passkey')
    // A reply is thenable (it resolves once sent): never the value of an async function, so it rides in an object.
    if ('refused' in pending) return pending.refused
    const { params, interactionId, target } = pending
    try {
      // Answered at /login/passkey: the page's password form posts to an absolute path (`root`).
      const again = async (error: string): Promise<FastifyReply> => {
        const passkey = await offerPasskeyLogin(reply, deps, interactionId)
        return sendLoginPage(reply, 400, { clientName: target.name, interaction: interactionId, csrf: params.csrf!, error, root: issuerPath(deps.config), ...(passkey === undefined ? {} : { passkey }) }, target.redirect)
      }
      clearCeremony(reply, deps, 'login', params.ceremony)
      const rp = relyingParty(deps.config)
      if (rp === null) return await again('Passkeys are not available here. Sign in with your password.')
      const ceremony = readCeremony(request, deps, 'login', params, interactionId)
      if (ceremony === null) {
        request.log.info({ event: 'login.rejected', reason: 'ceremony', method: 'passkey', client_id: target.clientId, ip: request.ip }, 'passkey ceremony missing or expired')
        return await again(PASSKEY_LOGIN_FAILED_MESSAGE)
      }
      const result = await checkAssertion(deps, rp, params.credential, ceremony)
      if (!result.ok) {
        audit(request.log, deps.audit, { event: 'mfa.failed', kind: 'passkey', step: 'login', reason: result.reason, factor_id: result.factorId, sub: result.userId, client_id: target.clientId, ip: request.ip }, 'passkey sign-in refused')
        return await again(PASSKEY_LOGIN_FAILED_MESSAGE)
      }
      const user = await deps.users.findById(result.factor.userId)
      if (user === null || user.disabled) {
        audit(request.log, deps.audit, { event: 'mfa.failed', kind: 'passkey', step: 'login', reason: 'unknown', factor_id: result.factor.id, sub: result.factor.userId, client_id: target.clientId, ip: request.ip }, 'passkey sign-in refused: no such user or disabled')
        return await again(PASSKEY_LOGIN_FAILED_MESSAGE)
      }
      const amr = passkeyAmr({ backedUp: result.backedUp, withPassword: false })
      if (await completeSignIn(request, reply, deps, { user, amr, target, interactionId })) {
        audit(request.log, deps.audit, { event: 'login.succeeded', method: 'passkey', factor_id: result.factor.id, amr, client_id: target.clientId, sub: user.id, ip: request.ip }, 'login succeeded')
        return reply
      }
      return await again(PASSKEY_LOGIN_FAILED_MESSAGE)
    } catch (err) {
      return sendServerFailure(request, reply, err, {
        log: 'passkey login failed on the server side',
        message: 'Signing in is not possible right now.',
        hint: 'Go back to the application and try again in a moment.',
      })
    }
  })
}
