import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AuthDeps } from '../runtime/deps.js'
import { singleParams, type Params } from '../http/form.js'
import { messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { SECOND_FACTOR_BODY, formBody } from '../http/schemas.js'
import { checkSecondFactor, clearSecondStep, finishSecondStep, readSecondStep, resolveSecondStep, secondStepMethods, SECOND_STEP_PATH, type SecondFactorKind } from '../signin/second-step.js'
import { SECOND_FACTOR_FAILED_MESSAGE, sendSecondStepPage } from '../signin/second-step-page.js'

function expired(reply: FastifyReply, status: number): FastifyReply {
  return sendPage(reply, {
    status,
    title: 'Sign-in expired',
    body: messagePage('error', 'This sign-in has expired or is not valid.', 'Go back to the application and sign in again.'),
  })
}

/** What the page says for each refusal (wrong and reused alike: which one is only in the audit trail). */
const MESSAGES = {
  malformed: { totp: 'Enter the 6-digit code from your authenticator app.', recovery: 'Enter one of your recovery codes, as xxxxx-xxxxx.' },
  wrong: SECOND_FACTOR_FAILED_MESSAGE,
  reused: SECOND_FACTOR_FAILED_MESSAGE,
  locked: 'Too many attempts. Wait a few minutes, then try again.',
  busy: 'Too many attempts at once. Try again in a moment.',
  unavailable: { totp: 'Your authenticator app cannot be checked right now. Use a recovery code instead.', recovery: 'You have no recovery codes left.' },
} as const

/**
 * POST /login/second-factor (DESIGN §10.5): the second step of a password sign-in
 * (signin/second-step.ts). CSRF-protected by the second step's own pending form (its signed
 * cookie's token must equal the form's); the code is checked under the attempt limits, then the
 * sign-in ends as every sign-in does (completeSignIn) with amr `pwd otp mfa`. A refused code:
 * the page again with the error; an expired step, pending login, or a user changed meanwhile:
 * the sign-in has to start again.
 */
export async function secondFactorRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const errorHandler = pageErrorHandler({ title: 'Sign-in expired', message: 'This sign-in has expired or is not valid.', hint: 'Go back to the application and sign in again.' })
  app.post(SECOND_STEP_PATH, { schema: { body: formBody(SECOND_FACTOR_BODY) }, errorHandler }, async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) return expired(reply, 400)
    let params: Params
    try {
      params = singleParams(request.body, 'second-factor')
    } catch {
      return expired(reply, 400)
    }
    const check = readSecondStep(request, deps, params.step, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'login.second_step_rejected', reason: check.reason, ip: request.ip }, 'second-step form rejected')
      return expired(reply, check.reason === 'csrf' ? 403 : 400)
    }
    const stepId = params.step!
    const step = check.value
    try {
      // Nothing is spent for a step that leads nowhere any more.
      const resolved = await resolveSecondStep(request, deps, step)
      if (resolved === null) {
        request.log.info({ event: 'login.second_step_rejected', reason: 'pending login or user changed', sub: step.userId, ip: request.ip }, 'second-step form rejected')
        clearSecondStep(reply, deps.config, stepId)
        return expired(reply, 400)
      }
      const { target } = resolved
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
      const methods = secondStepMethods(await deps.factors.list(step.userId))
      return sendSecondStepPage(reply, outcome.reason === 'locked' ? 429 : 400, { config: deps.config, step: stepId, csrf: step.csrf, clientName: target.name, redirect: target.redirect, methods, error: { message, method: kind } })
    } catch (err) {
      return sendServerFailure(request, reply, err, {
        log: 'second step failed on the server side',
        message: 'Signing in is not possible right now.',
        hint: 'Go back to the application and try again in a moment.',
      })
    }
  })
}
