import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'
import { singleParams, type Params } from '../http/form.js'
import { messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { SECOND_FACTOR_BODY, SECOND_FACTOR_PASSKEY_BODY, formBody } from '../http/schemas.js'
import { checkSecondFactor, clearSecondStep, finishSecondStep, readSecondStep, resolveSecondStep, sendSecondStep, SECOND_STEP_PATH, type SecondFactorKind, type SecondStep } from '../signin/second-step.js'
import type { LoginTarget } from '../signin/sign-in.js'
import type { PendingFormSeal } from '../signin/browser.js'
import { checkSecondStepPasskey, clearCeremony } from '../mfa/passkeys.js'
import { audit } from '../audit/trail.js'
import { SECOND_FACTOR_FAILED_MESSAGE } from '../signin/second-step-page.js'

function expired(reply: FastifyReply, status: number): FastifyReply {
  return sendPage(reply, {
    status,
    title: 'Sign-in expired',
    body: messagePage('error', 'This sign-in has expired or is not valid.', 'Go back to the application and sign in again.'),
  })
}

/** What the page says for each refusal (wrong and reused alike: which one is only in the audit trail). */
/** One message for every refused passkey (which check failed is only in the audit trail). */
const PASSKEY_FAILED_MESSAGE = 'That passkey could not be used. Try again, or use another way below.'

const MESSAGES = {
  malformed: { totp: 'Enter the 6-digit code from your authenticator app.', recovery: 'Enter one of your recovery codes, as xxxxx-xxxxx.' },
  wrong: SECOND_FACTOR_FAILED_MESSAGE,
  reused: SECOND_FACTOR_FAILED_MESSAGE,
  locked: 'Too many attempts. Wait a few minutes, then try again.',
  busy: 'Too many attempts at once. Try again in a moment.',
  unavailable: { totp: 'Your authenticator app cannot be checked right now. Use a recovery code instead.', recovery: 'You have no recovery codes left.' },
} as const

/**
 * POST /login/second-factor and /login/second-factor/passkey (DESIGN §10.5): the second step of a password sign-in
 * (signin/second-step.ts). CSRF-protected by the second step's own pending form (its signed
 * cookie's token must equal the form's); the code is checked under the attempt limits, then the
 * sign-in ends as every sign-in does (completeSignIn) with amr `pwd otp mfa`. A refused code:
 * the page again with the error; an expired step, pending login, or a user changed meanwhile:
 * the sign-in has to start again.
 */
export async function secondFactorRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const errorHandler = pageErrorHandler({ title: 'Sign-in expired', message: 'This sign-in has expired or is not valid.', hint: 'Go back to the application and sign in again.' })

  /**
   * What every form of the step starts with: its fields, its pending form (genuine, unexpired, the
   * CSRF token matching) and the sign-in it still leads to; else the refusal, already sent.
   */
  const pendingStep = async (request: FastifyRequest, reply: FastifyReply, form: string): Promise<{ params: Params; stepId: string; step: SecondStep & PendingFormSeal; target: LoginTarget } | { refused: FastifyReply }> => {
    if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) return { refused: expired(reply, 400) }
    let params: Params
    try {
      params = singleParams(request.body, form)
    } catch {
      return { refused: expired(reply, 400) }
    }
    const check = readSecondStep(request, deps, params.step, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'login.second_step_rejected', reason: check.reason, ip: request.ip }, 'second-step form rejected')
      return { refused: expired(reply, check.reason === 'csrf' ? 403 : 400) }
    }
    const stepId = params.step!
    const step = check.value
    // Nothing is spent for a step that leads nowhere any more.
    const resolved = await resolveSecondStep(request, deps, step)
    if (resolved === null) {
      request.log.info({ event: 'login.second_step_rejected', reason: 'pending login or user changed', sub: step.userId, ip: request.ip }, 'second-step form rejected')
      clearSecondStep(reply, deps.config, stepId)
      return { refused: expired(reply, 400) }
    }
    return { params, stepId, step, target: resolved.target }
  }

  const failed = (request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply =>
    sendServerFailure(request, reply, err, {
      log: 'second step failed on the server side',
      message: 'Signing in is not possible right now.',
      hint: 'Go back to the application and try again in a moment.',
    })

  app.post(SECOND_STEP_PATH, { schema: { body: formBody(SECOND_FACTOR_BODY) }, errorHandler }, async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      const p = await pendingStep(request, reply, 'second-factor')
      // A reply is thenable (it resolves once sent): never the value of an async function, so it rides in an object.
      if ('refused' in p) return p.refused
      const { params, stepId, step, target } = p
      const factors = await deps.factors.list(step.userId)
      const kind: SecondFactorKind = params.recovery_code !== undefined ? 'recovery' : 'totp'
      const code = kind === 'recovery' ? params.recovery_code! : (params.code ?? '')
      const outcome = await checkSecondFactor(deps, { userId: step.userId, kind, code, factors, address: request.ip, clientId: target.clientId, log: request.log })
      if (outcome.ok) {
        if (await finishSecondStep(request, reply, deps, stepId, step, outcome.amr)) return reply
        return expired(reply, 400)
      }
      const m = MESSAGES[outcome.reason]
      const message = typeof m === 'string' ? m : m[kind]
      // The factors as they are now: a recovery code just spent elsewhere, the last one, etc.
      return await sendSecondStep(reply, deps, { status: outcome.reason === 'locked' ? 429 : 400, stepId, csrf: step.csrf, userId: step.userId, target, factors: await deps.factors.list(step.userId), error: { message, method: kind } })
    } catch (err) {
      return failed(request, reply, err)
    }
  })

  /**
   * POST /login/second-factor/passkey: the second step with one of the user's own passkeys
   * (mfa/passkeys.ts: the ceremony's cookie bound to this step, the library's checks, the
   * counter in the factor store); then the sign-in ends with amr `pwd hwk|swk user mfa`. A
   * refusal: the page again with a new ceremony, audited `mfa.failed`. (Assertions cannot be
   * guessed, so these attempts are not counted toward the code lockout.)
   */
  app.post(`${SECOND_STEP_PATH}/passkey`, { schema: { body: formBody(SECOND_FACTOR_PASSKEY_BODY) }, errorHandler }, async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      const p = await pendingStep(request, reply, 'second-factor-passkey')
      if ('refused' in p) return p.refused
      const { params, stepId, step, target } = p
      // This ceremony is answered: its cookie goes, whatever the outcome (a refusal offers a new one).
      clearCeremony(reply, deps, 'step', params.ceremony)
      const result = await checkSecondStepPasskey(request, deps, params, step.userId, stepId)
      if (result.ok) {
        if (await finishSecondStep(request, reply, deps, stepId, step, result.amr)) return reply
        return expired(reply, 400)
      }
      audit(request.log, deps.audit, { event: 'mfa.failed', kind: 'passkey', step: 'second_step', reason: result.reason, factor_id: result.factorId, sub: step.userId, client_id: target.clientId, ip: request.ip }, 'second factor refused: passkey')
      return await sendSecondStep(reply, deps, { status: 400, stepId, csrf: step.csrf, userId: step.userId, target, factors: await deps.factors.list(step.userId), error: { message: PASSKEY_FAILED_MESSAGE, method: 'passkey' } })
    } catch (err) {
      return failed(request, reply, err)
    }
  })
}
