import { createHash } from 'node:crypto'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import type { Factor, RecoveryCodesFactor, TotpFactor } from '../mfa/factors.js'
import { AMR_PASSWORD_RECOVERY, AMR_PASSWORD_TOTP } from '../mfa/assurance.js'
import { normaliseTotpCode, verifyTotp } from '../mfa/totp.js'
import { openSecret } from '../mfa/secret-seal.js'
import { recoveryCodeHash } from '../mfa/recovery-codes.js'
import { audit } from '../audit/trail.js'
import { clearPendingForm, dropOldestPendingForms, issuerPath, readInteraction, readPendingForm, startPendingForm, type PendingForm, type PendingFormCheck } from './browser.js'
import { completeSignIn, loginTarget, type LoginTarget } from './sign-in.js'
import type { LoginTicket } from './login-limiter.js'
import { sendSecondStepPage, type SecondStepPageInput } from './second-step-page.js'
import { offerPasskeyStep, passkeyStepSection } from '../mfa/passkeys.js'
import { html } from '../http/html.js'

/**
 * The second step of a password sign-in (DESIGN §10.5). Once POST /login has accepted the
 * password of a user who holds a TOTP or a passkey (`secondStepNeeded`), no session starts yet:
 * the browser gets a second-step pending form (signin/browser.ts) of its own: a signed cookie
 * `gh_mfa_<id>` under <issuer>/login, alive SECOND_STEP_TTL_MS, bound to the user and the pending
 * login (`interaction`) it continues; the password is never carried, only a digest of the hash it
 * matched, so a password change or reset in between voids the step. The page
 * (second-step-page.ts) asks for a code of the authenticator app, or a recovery code, or (filled
 * by the passkeys lane) a passkey; POST /login/second-factor (routes/second-factor.ts) checks it
 * here (`checkSecondFactor`) and ends with `finishSecondStep`, the one end of every second step.
 *
 * Second-factor attempts are limited like passwords (signin/login-limiter.ts): the login
 * limiter's buckets, under a per-user name no username can take (`secondFactorBucket`), and the
 * client address's own bucket (shared with password attempts: one budget of guesses per address).
 * A lockout refuses even a correct code. Failures are audited `mfa.failed` (kind, reason
 * wrong|reused|locked), lockouts `mfa.locked`, the sign-in `login.succeeded` with its `amr`.
 */
export const SECOND_STEP_TTL_MS = 5 * 60_000
/** Second steps one browser holds open at most (one cookie each). */
export const MAX_PENDING_SECOND_STEPS = 3
/** Where the second step's forms post (relative to the issuer). */
export const SECOND_STEP_PATH = '/login/second-factor'

const SECOND_STEP_FORM: PendingForm = { prefix: 'gh_mfa_', path: (config: AuthConfig) => `${issuerPath(config)}/login`, ttlMs: SECOND_STEP_TTL_MS }

/** What a second-step cookie holds (besides its CSRF token and expiry). */
export interface SecondStep {
  /** The user whose password was accepted. */
  userId: string
  /** The pending login (signin/browser.ts) this step continues; its cookie is cleared at the end. */
  interactionId: string
  /** The pending login's own CSRF token, to read it back at the end (never shown again). */
  interactionCsrf: string
  /** A digest of the password hash the password matched (passwordDigest): a change in between voids the step. */
  passwordDigest: string
}

/** What the second-step page offers: a TOTP code, a recovery code (some left), a passkey. */
export interface SecondStepMethods {
  totp: boolean
  recovery: boolean
  passkey: boolean
}

/**
 * Whether a password sign-in needs a second step: the user holds a TOTP or a passkey. Recovery
 * codes alone do not count (they stand in for a lost factor, they are not one). The one place
 * this is decided (the assurance lane extends it with a client's require_mfa and acr_values).
 */
export function secondStepNeeded(factors: readonly Factor[]): boolean {
  return factors.some((f) => f.kind === 'totp' || f.kind === 'passkey')
}

/** What the page can offer a user with these factors. */
export function secondStepMethods(factors: readonly Factor[]): SecondStepMethods {
  return {
    totp: factors.some((f) => f.kind === 'totp'),
    recovery: factors.some((f) => f.kind === 'recovery' && f.codeHashes.length > 0),
    passkey: factors.some((f) => f.kind === 'passkey'),
  }
}

/** A digest of a stored password hash (never the hash itself in a cookie). */
export function passwordDigest(passwordHash: string): string {
  return createHash('sha256').update('gatehouse second step\0').update(passwordHash).digest('base64url').slice(0, 22)
}

/** The URL the second step's forms post to (absolute: the page is served at /login and at /login/second-factor). */
export function secondStepUrl(config: AuthConfig): string {
  return `${config.issuer}${SECOND_STEP_PATH}`
}

/** Starts a second step; null when the cookie cannot be set (too large). Keeps at most MAX_PENDING_SECOND_STEPS. */
export function startSecondStep(reply: FastifyReply, deps: AuthDeps, step: SecondStep): { id: string; csrf: string } | null {
  return startPendingForm(reply, deps, SECOND_STEP_FORM, step, () => dropOldestPendingForms(reply, deps, SECOND_STEP_FORM, MAX_PENDING_SECOND_STEPS))
}

function isSecondStep(v: Record<string, unknown>): boolean {
  return typeof v.userId === 'string' && typeof v.interactionId === 'string' && typeof v.interactionCsrf === 'string' && typeof v.passwordDigest === 'string'
}

/**
 * The second step named by a form's `step` and `csrf` fields: its cookie genuine, unexpired, the
 * CSRF token matching. What the passkeys lane reads too.
 */
export function readSecondStep(request: FastifyRequest, deps: AuthDeps, id: string | undefined, csrf: string | undefined): PendingFormCheck<SecondStep> {
  return readPendingForm<SecondStep>(request, deps, SECOND_STEP_FORM, id, csrf, isSecondStep)
}

export function clearSecondStep(reply: FastifyReply, config: AuthConfig, id: string): void {
  clearPendingForm(reply, config, SECOND_STEP_FORM, id)
}

/**
 * What a second step still leads to: its pending login (cookie alive) and target (client
 * unchanged), and its user (still there, enabled, with the same password). Null when any of
 * them is gone: the sign-in has to start again.
 */
export async function resolveSecondStep(request: FastifyRequest, deps: AuthDeps, step: SecondStep): Promise<{ user: User; target: LoginTarget } | null> {
  const pending = readInteraction(request, deps, step.interactionId, step.interactionCsrf)
  if (!pending.ok) return null
  const target = await loginTarget(deps, pending.value)
  if (target === null) return null
  const user = await deps.users.findById(step.userId)
  if (user === null || user.disabled || passwordDigest(user.passwordHash) !== step.passwordDigest) return null
  return { user, target }
}

/**
 * The end of a second step that succeeded (a code, a recovery code, a passkey): the pending login
 * and its target resolved again, the second-step cookie cleared, the login session started with
 * `amr` (completeSignIn), `login.succeeded` audited with it. True once the answer is sent; false,
 * with nothing sent (the cookie clearing aside), when the step no longer leads anywhere (pending
 * login expired, client or user changed): the caller answers that the sign-in has expired.
 */
export async function finishSecondStep(request: FastifyRequest, reply: FastifyReply, deps: AuthDeps, stepId: string, step: SecondStep, amr: readonly string[]): Promise<boolean> {
  const resolved = await resolveSecondStep(request, deps, step)
  // Cleared before the answer is sent (a cookie cannot be set after): the step is spent either way.
  clearSecondStep(reply, deps.config, stepId)
  if (resolved === null) return false
  const { user, target } = resolved
  if (!(await completeSignIn(request, reply, deps, { user, amr, target, interactionId: step.interactionId }))) return false
  audit(request.log, deps.audit, { event: 'login.succeeded', client_id: target.clientId, sub: user.id, amr: [...amr], ip: request.ip }, 'login succeeded')
  return true
}

/**
 * After a password was accepted for a user who needs a second step: its cookie, and the page
 * asking for it. Null when the cookie cannot be set (the caller answers that the form expired).
 */
export async function showSecondStep(reply: FastifyReply, deps: AuthDeps, input: { user: User; interactionId: string; interactionCsrf: string; target: LoginTarget; factors: readonly Factor[] }): Promise<{ sent: FastifyReply } | null> {
  const started = startSecondStep(reply, deps, { userId: input.user.id, interactionId: input.interactionId, interactionCsrf: input.interactionCsrf, passwordDigest: passwordDigest(input.user.passwordHash) })
  if (started === null) return null
  return { sent: await sendSecondStep(reply, deps, { status: 200, stepId: started.id, csrf: started.csrf, userId: input.user.id, target: input.target, factors: input.factors }) }
}

/**
 * The second-step page, first shown or again after a refusal: the user's methods as they are
 * now, and with a passkey (where passkeys can be used) a new ceremony bound to this step.
 */
export async function sendSecondStep(
  reply: FastifyReply,
  deps: AuthDeps,
  input: { status: number; stepId: string; csrf: string; userId: string; target: LoginTarget; factors: readonly Factor[]; error?: SecondStepPageInput['error'] },
): Promise<FastifyReply> {
  const methods = secondStepMethods(input.factors)
  const offer = methods.passkey ? await offerPasskeyStep(reply, deps, input.userId, input.stepId) : undefined
  const hidden = html`<input type="hidden" name="step" value="${input.stepId}"><input type="hidden" name="csrf" value="${input.csrf}">`
  return sendSecondStepPage(reply, input.status, {
    config: deps.config,
    step: input.stepId,
    csrf: input.csrf,
    clientName: input.target.name,
    redirect: input.target.redirect,
    methods,
    ...(input.error === undefined ? {} : { error: input.error }),
    ...(offer === undefined ? {} : { passkey: { section: passkeyStepSection(offer, hidden), scripts: offer.scripts } }),
  })
}

// --- checking a code -------------------------------------------------------------------------------

/**
 * The limiter's bucket of a user's second-factor attempts: a name no username can be (usernames
 * have no control characters, directory/users.ts), from a digest of the id (the limiter folds
 * case; ids must not be folded).
 */
export function secondFactorBucket(userId: string): string {
  return `\0mfa\0${createHash('sha256').update(userId).digest('hex')}`
}

export type SecondFactorKind = 'totp' | 'recovery'

export type SecondFactorOutcome =
  | { ok: true; amr: readonly string[] }
  /**
   * `malformed`: not the shape of a code (refused without work, not counted); `wrong`, `reused`:
   * counted; `locked`: refused during a lockout without looking at the code; `busy`: not counted,
   * the user's bucket is full of undecided attempts; `unavailable`: the user has no such factor,
   * or its sealed secret does not open (COOKIE_SECRET rotated without keeping the old one).
   */
  | { ok: false; reason: 'malformed' | 'wrong' | 'reused' | 'locked' | 'busy' | 'unavailable'; retryAfterMs?: number }

export interface SecondFactorInput {
  userId: string
  kind: SecondFactorKind
  /** What the user typed. */
  code: string
  /** The user's factors (listed once by the caller). */
  factors: readonly Factor[]
  address: string
  clientId?: string
  log: FastifyBaseLogger
}

/**
 * Checks a TOTP or recovery code: its shape first (no work for what cannot be a code), then the
 * attempt limits, then the code: a TOTP code against the sealed secret at the clock's time (±1
 * step), its step recorded atomically so it is accepted once (RFC 6238 §5.2); a recovery code
 * spent atomically by its digest. Every outcome but `malformed`, `busy` and `unavailable` is audited.
 */
export async function checkSecondFactor(deps: AuthDeps, input: SecondFactorInput): Promise<SecondFactorOutcome> {
  const { userId, kind, log } = input
  const refs = { kind, sub: userId, client_id: input.clientId, ip: input.address }
  const totp = input.factors.find((f): f is TotpFactor => f.kind === 'totp')
  const recovery = input.factors.find((f): f is RecoveryCodesFactor => f.kind === 'recovery')
  if (kind === 'totp' ? normaliseTotpCode(input.code) === null : recoveryCodeHash(input.code) === null) return { ok: false, reason: 'malformed' }
  if (kind === 'totp' ? totp === undefined : recovery === undefined || recovery.codeHashes.length === 0) return { ok: false, reason: 'unavailable' }

  const limiter = deps.loginGate.limiter
  const check = await limiter.attempt(secondFactorBucket(userId), input.address)
  if (check.status === 'locked') {
    if (check.lockedNow) audit(log, deps.audit, { event: 'mfa.locked', ...refs, scope: check.scope, retry_after_s: Math.ceil(check.retryAfterMs / 1000) }, 'second-factor attempts locked out', 'warn')
    audit(log, deps.audit, { event: 'mfa.failed', ...refs, reason: 'locked', scope: check.scope }, 'second factor refused: locked out')
    return { ok: false, reason: 'locked', retryAfterMs: check.retryAfterMs }
  }
  if (check.status === 'busy') return { ok: false, reason: 'busy' }
  const ticket = check.ticket
  const failures = check.counted.user + 1
  try {
    const now = deps.clock()
    if (kind === 'totp') {
      const secret = openSecret(deps.config.cookieSecrets, totp!.sealedSecret, userId)
      if (secret === null) {
        await limiter.release(ticket)
        log.error({ event: 'mfa.unreadable_secret', sub: userId, factor_id: totp!.id }, 'a TOTP secret does not open with any COOKIE_SECRET (rotated without keeping the old value?)')
        return { ok: false, reason: 'unavailable' }
      }
      const step = verifyTotp(secret, input.code, now)
      if (step === null) return await fail(deps, log, ticket, { ...refs, factor_id: totp!.id, failures }, 'wrong')
      if (!(await deps.factors.useTotpStep(userId, totp!.id, step, now))) return await fail(deps, log, ticket, { ...refs, factor_id: totp!.id, failures }, 'reused')
      await limiter.succeeded(ticket)
      return { ok: true, amr: AMR_PASSWORD_TOTP }
    }
    const left = await deps.factors.useRecoveryCode(userId, recoveryCodeHash(input.code)!, now)
    if (left === null) return await fail(deps, log, ticket, { ...refs, factor_id: recovery!.id, failures }, 'wrong')
    await limiter.succeeded(ticket)
    log.info({ event: 'mfa.recovery_code_used', sub: userId, factor_id: recovery!.id, codes_left: left }, 'recovery code used')
    return { ok: true, amr: AMR_PASSWORD_RECOVERY }
  } catch (err) {
    // The store failed (StoreUnavailable): no guess was judged, give the attempt back.
    await limiter.release(ticket).catch(() => undefined)
    throw err
  }
}

async function fail(deps: AuthDeps, log: FastifyBaseLogger, ticket: LoginTicket, fields: Record<string, unknown>, reason: 'wrong' | 'reused'): Promise<SecondFactorOutcome> {
  await deps.loginGate.limiter.failed(ticket)
  audit(log, deps.audit, { event: 'mfa.failed', ...fields, reason }, reason === 'reused' ? 'second factor refused: code already used' : 'second factor refused: wrong code')
  return { ok: false, reason }
}
