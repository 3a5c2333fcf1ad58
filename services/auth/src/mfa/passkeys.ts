import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server'
import type { AuthConfig } from '../config.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import { clearPendingForm, dropOldestPendingForms, issuerPath, readPendingForm, startPendingForm, type PendingForm } from '../signin/browser.js'
import { html, passkeyForm, type Html, type PasskeyOffer } from '../http/html.js'
import { passkeyAmr } from './assurance.js'
import type { PasskeyFactor } from './factors.js'

/**
 * Passkeys (WebAuthn Level 2, discoverable credentials; DESIGN §10.5): the relying party, the
 * ceremonies' challenges, enrolment, username-less sign-in and the passkey as a second step.
 *
 * Every check of a ceremony (challenge, origin, RP ID hash, flags, signature, attestation
 * format, algorithm) is @simplewebauthn/server's; this module only decides what is expected:
 *
 *  - The relying party is the issuer: RP ID = its host name, origin = its origin. An IP address
 *    is not a valid RP ID (WebAuthn §5.1.3 "valid domain"), and WebAuthn needs a secure context
 *    (https, or http://localhost), so with an issuer such as the development default
 *    http://127.0.0.1:4000 passkeys are simply not offered (`relyingParty` is null).
 *  - A challenge is 32 random bytes, carried in the signed, short-lived cookie of the ceremony's
 *    pending form (signin/browser.ts) and bound to what it is for (the login session enrolling,
 *    the pending login, the second step). It is single use on every replica: once an answer to
 *    it is verified, it is claimed in the replay store (`deps.assertionReplay`, Redis when
 *    configured), so the same response posted again is refused even with the cookie.
 *  - Registration requires a discoverable credential and user verification, attestation `none`
 *    (no authenticator is trusted or refused by make), ES256, RS256 or EdDSA keys, and excludes
 *    the user's own passkeys. The user handle is the user's id (`sub`, UTF-8): it already goes to
 *    every client in ID tokens and holds no name or email (the authenticator keeps the username
 *    as `user.name` anyway); it lets an assertion's user handle be checked against the passkey's
 *    owner.
 *  - An assertion is verified against the stored public key with user verification required;
 *    its signature counter is then accepted by the factor store in one atomic step
 *    (FactorStore.usePasskey: a counter that does not grow is a clone or a replay).
 */

/** The relying party: who the passkeys are for. */
export interface RelyingParty {
  /** The issuer's host name. */
  id: string
  /** The issuer's origin (what clientDataJSON.origin must be). */
  origin: string
  name: string
}

/** The relying party's name, which authenticators may show beside the user's name. */
export const RP_NAME = 'Gatehouse'
/** How long a ceremony's challenge is good for (its cookie's life, and the browser's timeout). */
export const CEREMONY_TTL_MS = 5 * 60_000
/** COSE algorithms accepted for a new passkey: ES256, RS256, EdDSA (RFC 9053, RFC 8812). */
export const PASSKEY_ALGORITHMS = [-7, -257, -8] as const
/** The replay store's namespace for spent challenges (a client id never has a newline, so none can collide with it). */
const CHALLENGE_NAMESPACE = 'gatehouse\nwebauthn'
/** The scripts a page with a ceremony loads (routes/assets.ts): the library's browser bundle, then the glue. */
export const PASSKEY_SCRIPTS = ['assets/simplewebauthn-browser.js', 'assets/passkeys.js'] as const
/** A credential's JSON larger than this is refused unread (an RSA key's attestation is about 1 KiB). */
export const MAX_CREDENTIAL_JSON = 16_384

/**
 * The issuer as a relying party, or null when passkeys cannot work there: a host that is an IP
 * address, or plain http anywhere but localhost (not a secure context).
 */
export function relyingParty(config: Pick<AuthConfig, 'issuer'>): RelyingParty | null {
  const url = new URL(config.issuer)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (host === '' || isIP(host) !== 0) return null
  const local = host === 'localhost' || host.endsWith('.localhost')
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) return null
  return { id: host, origin: url.origin, name: RP_NAME }
}

// --- ceremonies ----------------------------------------------------------------------------

/** What a ceremony is for: enrolling on the account page, signing in without a username, or the second step after the password. */
export type CeremonyPurpose = 'register' | 'login' | 'step'

/** Where each ceremony's form posts (under the issuer); its cookie is scoped to that path. */
export const CEREMONY_PATHS: Record<CeremonyPurpose, string> = {
  register: '/account/passkeys',
  login: '/login/passkey',
  step: '/login/second-factor/passkey',
}

const CEREMONY_FORMS: Record<CeremonyPurpose, PendingForm> = {
  register: { prefix: 'gh_pk_register_', path: (c) => issuerPath(c) + CEREMONY_PATHS.register, ttlMs: CEREMONY_TTL_MS },
  login: { prefix: 'gh_pk_login_', path: (c) => issuerPath(c) + CEREMONY_PATHS.login, ttlMs: CEREMONY_TTL_MS },
  step: { prefix: 'gh_pk_step_', path: (c) => issuerPath(c) + CEREMONY_PATHS.step, ttlMs: CEREMONY_TTL_MS },
}

/** What a ceremony's cookie holds: the challenge (base64url, as the options carry it) and what it is bound to. */
interface CeremonyContent {
  challenge: string
  /** The login session (register), the pending login's id (login), the second step's id (step). */
  bound: string
}

/** A ceremony read back from its cookie: the challenge to expect and when it expires (ms epoch). */
export interface Ceremony {
  challenge: string
  exp: number
}

/** 32 random bytes (WebAuthn §13.4.3: at least 16), and their base64url form. */
function newChallenge(): { bytes: Uint8Array<ArrayBuffer>; text: string } {
  const bytes = randomBytes(32)
  return { bytes: new Uint8Array(bytes), text: bytes.toString('base64url') }
}

function startCeremony(reply: FastifyReply, deps: AuthDeps, purpose: CeremonyPurpose, challenge: string, bound: string): { id: string; csrf: string } | null {
  const form = CEREMONY_FORMS[purpose]
  // Each page view starts one: a browser keeps the newest few (one per open tab), not one per view.
  return startPendingForm(reply, deps, form, { challenge, bound } satisfies CeremonyContent, () => dropOldestPendingForms(reply, deps, form, MAX_PENDING_CEREMONIES))
}

/** Ceremonies of one kind a browser holds at once (one cookie each). */
export const MAX_PENDING_CEREMONIES = 3

/**
 * The ceremony named by the posted `ceremony` and `ceremony_csrf` fields, if its cookie is
 * genuine, unexpired, of this purpose and bound to `bound`; null otherwise.
 */
export function readCeremony(request: FastifyRequest, deps: AuthDeps, purpose: CeremonyPurpose, params: Readonly<Record<string, string>>, bound: string): Ceremony | null {
  const check = readPendingForm<CeremonyContent>(request, deps, CEREMONY_FORMS[purpose], params.ceremony, params.ceremony_csrf, (v) => typeof v.challenge === 'string' && typeof v.bound === 'string')
  if (!check.ok || check.value.bound !== bound) return null
  return { challenge: check.value.challenge, exp: check.value.exp }
}

/** Clears a ceremony's cookie once its form has been answered. */
export function clearCeremony(reply: FastifyReply, deps: AuthDeps, purpose: CeremonyPurpose, id: string | undefined): void {
  if (id !== undefined && /^[A-Za-z0-9_-]{16}$/.test(id)) clearPendingForm(reply, deps.config, CEREMONY_FORMS[purpose], id)
}

function scripts(config: AuthConfig): string[] {
  return PASSKEY_SCRIPTS.map((s) => `${issuerPath(config)}/${s}`)
}

/** Spends a challenge on every replica: true the first time only. */
async function claimChallenge(deps: AuthDeps, ceremony: Ceremony): Promise<boolean> {
  return await deps.assertionReplay.claim(CHALLENGE_NAMESPACE, ceremony.challenge, Math.max(ceremony.exp, deps.clock() + 1))
}

// --- options -------------------------------------------------------------------------------

/** The user handle (WebAuthn `user.id`): the user's id as UTF-8 (see the module comment). */
export function userHandle(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId, 'utf8'))
}

/** navigator.credentials.create options (as JSON) for a new discoverable passkey of `user`. */
export async function registrationOptions(rp: RelyingParty, user: User, existing: readonly PasskeyFactor[], challenge: Uint8Array<ArrayBuffer>): Promise<string> {
  const display = typeof user.claims.name === 'string' && user.claims.name !== '' ? user.claims.name : user.username
  const options = await generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user.username,
    userID: userHandle(user.id),
    userDisplayName: display,
    challenge,
    timeout: CEREMONY_TTL_MS,
    attestationType: 'none',
    excludeCredentials: existing.map((p) => ({ id: p.credentialId, transports: p.transports })),
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    supportedAlgorithmIDs: [...PASSKEY_ALGORITHMS],
  })
  return JSON.stringify(options)
}

/**
 * navigator.credentials.get options (as JSON): no allowCredentials for a username-less sign-in
 * (the browser offers the site's discoverable passkeys), the user's own for a second step.
 */
export async function authenticationOptions(rp: RelyingParty, challenge: Uint8Array<ArrayBuffer>, allow?: readonly PasskeyFactor[]): Promise<string> {
  const options = await generateAuthenticationOptions({
    rpID: rp.id,
    challenge,
    timeout: CEREMONY_TTL_MS,
    userVerification: 'required',
    ...(allow === undefined ? {} : { allowCredentials: allow.map((p) => ({ id: p.credentialId, transports: p.transports })) }),
  })
  return JSON.stringify(options)
}

// --- reading a credential ------------------------------------------------------------------

const B64URL = /^[A-Za-z0-9_-]*$/

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isB64(v: unknown, min = 1): v is string {
  return typeof v === 'string' && v.length >= min && B64URL.test(v)
}

/** The JSON of a browser's response, parsed and shaped, or null (never an exception). */
function parseCredential(json: string | undefined): Record<string, unknown> | null {
  if (json === undefined || json.length > MAX_CREDENTIAL_JSON) return null
  let v: unknown
  try {
    v = JSON.parse(json)
  } catch {
    return null
  }
  if (!isRecord(v) || !isB64(v.id) || !isB64(v.rawId) || v.type !== 'public-key' || !isRecord(v.response)) return null
  if (!isB64(v.response.clientDataJSON)) return null
  if (v.clientExtensionResults !== undefined && !isRecord(v.clientExtensionResults)) return null
  return v
}

/** A registration response's JSON, or null when it is not shaped like one. */
export function parseRegistration(json: string | undefined): RegistrationResponseJSON | null {
  const v = parseCredential(json)
  if (v === null || !isRecord(v.response) || !isB64(v.response.attestationObject)) return null
  const transports = v.response.transports
  if (transports !== undefined && !(Array.isArray(transports) && transports.length <= 8 && transports.every((t) => typeof t === 'string' && t.length <= 32))) return null
  return { clientExtensionResults: {}, ...v } as unknown as RegistrationResponseJSON
}

/** An authentication response's JSON, or null when it is not shaped like one. */
export function parseAssertion(json: string | undefined): AuthenticationResponseJSON | null {
  const v = parseCredential(json)
  if (v === null || !isRecord(v.response) || !isB64(v.response.authenticatorData) || !isB64(v.response.signature)) return null
  const handle = v.response.userHandle
  if (handle !== undefined && handle !== null && !isB64(handle, 0)) return null
  return { clientExtensionResults: {}, ...v } as unknown as AuthenticationResponseJSON
}

// --- enrolment -----------------------------------------------------------------------------

/** Why an enrolment or an assertion was refused (the audit's `reason`). */
export type PasskeyFailure = 'wrong' | 'replayed' | 'unknown'

/** An enrolment's outcome: the stored passkey, or why nothing was stored. */
export type Enrolment = { ok: true; factor: PasskeyFactor } | { ok: false; reason: PasskeyFailure | 'exists' }

/**
 * Verifies a registration response to `ceremony` and stores the passkey for `user` with
 * `label`. `exists`: the credential is already registered (to anyone).
 */
export async function enrolPasskey(deps: AuthDeps, rp: RelyingParty, user: User, credentialJson: string | undefined, ceremony: Ceremony, label: string): Promise<Enrolment> {
  const response = parseRegistration(credentialJson)
  if (response === null) return { ok: false, reason: 'wrong' }
  let info
  try {
    const verified = await verifyRegistrationResponse({
      response,
      expectedChallenge: ceremony.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      requireUserPresence: true,
      requireUserVerification: true,
      supportedAlgorithmIDs: [...PASSKEY_ALGORITHMS],
    })
    if (!verified.verified) return { ok: false, reason: 'wrong' }
    info = verified.registrationInfo
  } catch {
    return { ok: false, reason: 'wrong' }
  }
  if (!(await claimChallenge(deps, ceremony))) return { ok: false, reason: 'replayed' }
  const now = deps.clock()
  const factor: PasskeyFactor = {
    id: randomBytes(16).toString('base64url'),
    userId: user.id,
    kind: 'passkey',
    label,
    createdAt: now,
    credentialId: info.credential.id,
    publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
    counter: info.credential.counter,
    transports: [...(info.credential.transports ?? [])],
  }
  if ((await deps.factors.add(factor)) !== 'added') return { ok: false, reason: 'exists' }
  return { ok: true, factor }
}

// --- assertions ----------------------------------------------------------------------------

/** A refusal names the passkey and its owner when the credential id was one (for the audit trail). */
export type AssertionFailure = { ok: false; reason: PasskeyFailure; factorId?: string; userId?: string }
/** An assertion's outcome: the passkey (its counter recorded) and whether it is synced (BS flag), or a refusal. */
export type AssertionCheck = { ok: true; factor: PasskeyFactor; backedUp: boolean } | AssertionFailure

/**
 * Verifies an assertion (the JSON the browser gave) answering `ceremony`: a registered passkey
 * (of `owner` only, when given), the library's checks against its stored public key (origin, RP
 * ID hash, challenge, flags with user verification, signature), the challenge spent, then the
 * counter accepted by the store in one atomic step. Malformed input is `wrong`, never an
 * exception; the store may throw StoreUnavailable.
 */
export async function checkAssertion(deps: AuthDeps, rp: RelyingParty, credentialJson: string | undefined, ceremony: Ceremony, owner?: string): Promise<AssertionCheck> {
  const response = parseAssertion(credentialJson)
  if (response === null) return { ok: false, reason: 'wrong' }
  const passkey = await deps.factors.findPasskey(response.id)
  if (passkey === null || (owner !== undefined && passkey.userId !== owner)) return { ok: false, reason: 'unknown' }
  const refused = (reason: PasskeyFailure): AssertionFailure => ({ ok: false, reason, factorId: passkey.id, userId: passkey.userId })
  // The user handle, when the authenticator gives one, must name the passkey's owner (WebAuthn §7.2 step 6).
  // Without a user named beforehand (sign-in with a passkey alone), it must be there (step 6).
  const handle = response.response.userHandle
  if (owner === undefined && (handle === undefined || handle === '')) return refused('wrong')
  if (handle !== undefined && handle !== '' && Buffer.from(handle, 'base64url').toString('utf8') !== passkey.userId) return refused('wrong')
  let info
  try {
    const verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: ceremony.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      // The counter rule is the store's (usePasskey below, one atomic step on every replica); a
      // copy read a moment ago adds nothing, so the library is given 0 and never decides it.
      credential: { id: passkey.credentialId, publicKey: new Uint8Array(Buffer.from(passkey.publicKey, 'base64url')), counter: 0, transports: passkey.transports as never },
      requireUserVerification: true,
    })
    if (!verified.verified) return refused('wrong')
    info = verified.authenticationInfo
  } catch {
    return refused('wrong')
  }
  if (!(await claimChallenge(deps, ceremony))) return refused('replayed')
  const use = await deps.factors.usePasskey(passkey.credentialId, info.newCounter, deps.clock())
  if (use.status === 'not_found') return { ok: false, reason: 'unknown' }
  if (use.status === 'replayed') return refused('replayed')
  return { ok: true, factor: use.factor, backedUp: info.credentialBackedUp }
}

// --- the account page ----------------------------------------------------------------------

/**
 * The "Add a passkey" form of the account page. With a recent sign-in, a registration ceremony
 * (its cookie bound to the login session `sid`); without, a plain post that answers with the
 * login form. Undefined when passkeys are not available.
 */
export async function offerPasskeyEnrolment(reply: FastifyReply, deps: AuthDeps, user: User, sid: string, recent: boolean): Promise<PasskeyOffer | undefined> {
  const rp = relyingParty(deps.config)
  if (rp === null) return undefined
  const base = { action: issuerPath(deps.config) + CEREMONY_PATHS.register, mode: 'register' as const, scripts: scripts(deps.config) }
  if (!recent) return base
  const existing = (await deps.factors.list(user.id)).filter((f): f is PasskeyFactor => f.kind === 'passkey')
  const challenge = newChallenge()
  const options = await registrationOptions(rp, user, existing, challenge.bytes)
  const started = startCeremony(reply, deps, 'register', challenge.text, sid)
  return started === null ? undefined : { ...base, ceremony: { ...started, options } }
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
}

/**
 * The account page's passkey part: the user's passkeys, each with a remove form (posting to
 * account/passkeys/remove with the page's hidden fields), and the "Add a passkey" form.
 */
export function accountPasskeysMarkup(input: { hidden: Html; passkeys: readonly PasskeyFactor[]; offer: PasskeyOffer | undefined; root: string }): Html {
  if (input.offer === undefined && input.passkeys.length === 0) return html``
  const rows: Html = {
    html: input.passkeys
      .map((p) => html`<li class="session passkey-item" id="passkey-${p.id}"><strong>${p.label}</strong><br>Added ${when(p.createdAt)}${p.lastUsedAt !== undefined && html`<br>Last used ${when(p.lastUsedAt)}`}<form method="post" action="${input.root}/account/passkeys/remove">${input.hidden}<input type="hidden" name="factor" value="${p.id}"><button type="submit" aria-label="${`Remove ${p.label}`}">Remove</button></form></li>`.html)
      .join(''),
  }
  const list = input.passkeys.length > 0 ? html`<ul id="passkeys" class="sessions">${rows}</ul>` : html`<p id="no-passkeys">You have no passkeys yet.</p>`
  return html`<div id="account-passkeys"><h3>Passkeys</h3>${list}${input.offer !== undefined && passkeyForm(input.offer, input.hidden, 'Add a passkey', 'passkey-add-form')}</div>`
}

// --- username-less sign-in -----------------------------------------------------------------

/** The login page's "Sign in with a passkey": a ceremony bound to the pending login `interactionId`; undefined when passkeys are not available. */
export async function offerPasskeyLogin(reply: FastifyReply, deps: AuthDeps, interactionId: string): Promise<PasskeyOffer | undefined> {
  const rp = relyingParty(deps.config)
  if (rp === null) return undefined
  const challenge = newChallenge()
  const options = await authenticationOptions(rp, challenge.bytes)
  const started = startCeremony(reply, deps, 'login', challenge.text, interactionId)
  if (started === null) return undefined
  return { action: issuerPath(deps.config) + CEREMONY_PATHS.login, mode: 'authenticate', ceremony: { ...started, options }, scripts: scripts(deps.config) }
}

// --- the second step -----------------------------------------------------------------------

/**
 * The passkey section of the second-step page (after the password): a ceremony allowing only
 * the user's own passkeys, bound to the second step `stepId`. Undefined when passkeys are not
 * available or the user has none.
 */
export async function offerPasskeyStep(reply: FastifyReply, deps: AuthDeps, userId: string, stepId: string): Promise<PasskeyOffer | undefined> {
  const rp = relyingParty(deps.config)
  if (rp === null) return undefined
  const passkeys = (await deps.factors.list(userId)).filter((f): f is PasskeyFactor => f.kind === 'passkey')
  if (passkeys.length === 0) return undefined
  const challenge = newChallenge()
  const options = await authenticationOptions(rp, challenge.bytes, passkeys)
  const started = startCeremony(reply, deps, 'step', challenge.text, stepId)
  if (started === null) return undefined
  return { action: issuerPath(deps.config) + CEREMONY_PATHS.step, mode: 'authenticate', ceremony: { ...started, options }, scripts: scripts(deps.config) }
}

/**
 * `<section id="passkey-step">` of the second-step page: the passkey form with the step's own
 * hidden fields (`hidden`: its id and CSRF token), posting to `<issuer>/login/second-factor/passkey`.
 * Empty when there is no offer. The page must be sent with `scripts: offer.scripts`.
 */
export function passkeyStepSection(offer: PasskeyOffer | undefined, hidden: Html): Html {
  if (offer === undefined) return html``
  return html`<section id="passkey-step" aria-labelledby="passkey-step-heading"><h2 id="passkey-step-heading">Use a passkey</h2>${passkeyForm(offer, hidden, 'Use a passkey', 'passkey-step-form')}</section>`
}

/** The second step's outcome: the amr of the completed sign-in, or a refusal. */
export type SecondStepPasskey = { ok: true; amr: string[]; factor: PasskeyFactor } | AssertionFailure

/**
 * The second step with a passkey: the assertion must be by one of `userId`'s own passkeys and
 * answer `ceremony`; the amr is then password + passkey (mfa/assurance.ts passkeyAmr).
 */
export async function verifySecondStepPasskey(deps: AuthDeps, userId: string, credentialJson: string | undefined, ceremony: Ceremony): Promise<SecondStepPasskey> {
  const rp = relyingParty(deps.config)
  if (rp === null) return { ok: false, reason: 'unknown' }
  const check = await checkAssertion(deps, rp, credentialJson, ceremony, userId)
  if (!check.ok) return check
  return { ok: true, amr: passkeyAmr({ backedUp: check.backedUp, withPassword: true }), factor: check.factor }
}

/**
 * The whole POST of `<issuer>/login/second-factor/passkey` after the step's own checks: the
 * ceremony read from its cookie (bound to `stepId`), then verifySecondStepPasskey. A missing or
 * expired ceremony is `wrong`.
 */
export async function checkSecondStepPasskey(request: FastifyRequest, deps: AuthDeps, params: Readonly<Record<string, string>>, userId: string, stepId: string): Promise<SecondStepPasskey> {
  const ceremony = readCeremony(request, deps, 'step', params, stepId)
  if (ceremony === null) return { ok: false, reason: 'wrong' }
  return await verifySecondStepPasskey(deps, userId, params.credential, ceremony)
}
