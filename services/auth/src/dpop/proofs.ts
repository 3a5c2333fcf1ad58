import { hkdfSync } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { InvalidDpopProof, OAuthError, type PresentedAccessToken } from '@gatehouse/service-kit'
import {
  DpopNonces,
  checkSenderConstraint,
  replayKey,
  replayUntil,
  singleDpopHeader,
  verifyDpopProof,
  type DpopProofCheck,
  type DpopReplayCache,
  type VerifiedDpopProof,
} from '@gatehouse/verifier'
import type { Client } from '../directory/clients.js'
import type { AuthDeps } from '../runtime/deps.js'

/**
 * The auth service's DPoP step (RFC 9449, DESIGN §10.3): the proof of a request at /token (and,
 * through `proofOfRequest`, /par), the proof of a token presented at /userinfo, server nonces,
 * and the single use of every proof. The checks of one proof are @gatehouse/verifier's
 * `verifyDpopProof`, shared with the resource servers; this room adds what only the issuer
 * decides: the URL a proof must name (ISSUER + the route's path), when a proof is required, the
 * replay cache every replica shares (Redis), and nonces every replica agrees on.
 */

/** How old a proof's `iat` may be (§11.1: a short window; the replay cache holds a proof this long). */
export const PROOF_MAX_AGE_S = 60
/** Clock skew accepted on either side of a proof's `iat`. */
export const PROOF_CLOCK_TOLERANCE_S = 5

/** The key the token binds to (`cnf.jkt`, RFC 9449 §6.1): what a grant needs of a proof. */
export interface BoundKey {
  jkt: string
}

/** What AuthDeps holds for DPoP. */
export interface DpopDeps {
  /** Proofs seen (Redis when configured, so every replica refuses a replay). */
  replay: DpopReplayCache
  /** Server nonces (§8) when DPOP_REQUIRE_NONCE is on; null otherwise. */
  nonces: DpopNonces | null
}

/**
 * The nonce secret, derived from COOKIE_SECRET (its first, signing entry) with HKDF, so every
 * replica makes and accepts the same nonces without another secret to distribute. A rotation of
 * COOKIE_SECRET changes the nonces: clients holding an old one are asked once more (use_dpop_nonce).
 */
export function dpopNonceSecret(cookieSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', cookieSecret, Buffer.alloc(0), 'gatehouse dpop nonce', 32))
}

export function createDpopDeps(options: { cookieSecret: string; requireNonce: boolean; clock: () => number; replay: DpopReplayCache }): DpopDeps {
  return {
    replay: options.replay,
    nonces: options.requireNonce ? new DpopNonces(dpopNonceSecret(options.cookieSecret), options.clock) : null,
  }
}

type Outcome = 'accepted' | 'missing' | 'invalid' | 'replayed' | 'use_nonce' | 'wrong_key'

function outcomeOf(err: OAuthError): Outcome {
  if (err.code === 'use_dpop_nonce') return 'use_nonce'
  if (err.detail === 'replay') return 'replayed'
  if (err.detail === 'no proof' || err.detail === 'dpop_downgrade') return 'missing'
  if (err.detail === 'dpop_jkt_mismatch') return 'wrong_key'
  return 'invalid'
}

/**
 * Counts a refused proof and logs why (the error's `detail`), never the proof or the token;
 * returns the error for the caller to throw.
 */
export function proofRefused(request: FastifyRequest, deps: AuthDeps, err: OAuthError, clientId?: string): OAuthError {
  const outcome = outcomeOf(err)
  deps.metrics.dpopProofs.inc({ outcome })
  request.log.info({ event: 'dpop.proof_refused', outcome, reason: err.detail, path: request.routeOptions.url, ...(clientId === undefined ? {} : { client_id: clientId }) }, 'DPoP proof refused')
  return err
}

function checkFor(deps: AuthDeps, method: string, path: string): Omit<DpopProofCheck, 'accessToken'> {
  const nonces = deps.dpop.nonces
  return {
    method,
    // The public URL of the route (ISSUER may carry a path prefix), never the Host header.
    url: `${deps.config.issuer}${path}`,
    now: Math.floor(deps.clock() / 1000),
    maxAgeSeconds: PROOF_MAX_AGE_S,
    clockToleranceSeconds: PROOF_CLOCK_TOLERANCE_S,
    ...(nonces === null ? {} : { nonce: (n: string | undefined) => nonces.valid(n) }),
  }
}

/**
 * §8.2: with nonces on, a DPoP request's answer carries the nonce to use next, whatever its
 * outcome (the use_dpop_nonce error included). Call before anything can throw.
 */
export function offerNonce(request: FastifyRequest, reply: FastifyReply, deps: AuthDeps, dpopRequest = request.headers.dpop !== undefined): void {
  if (deps.dpop.nonces !== null && dpopRequest) reply.header('dpop-nonce', deps.dpop.nonces.current())
}

/**
 * The proof of a request to an endpoint that takes proofs without a token (/token, /par):
 * null when none was sent; `invalid_dpop_proof` or `use_dpop_nonce` when it fails §4.3's checks.
 * Stateless: nothing is spent (the replay check is `claimProof`, once the request is otherwise
 * acceptable).
 */
export function readProof(request: FastifyRequest, deps: AuthDeps, path: string): VerifiedDpopProof | null {
  try {
    const header = singleDpopHeader(request.headers.dpop)
    if (header === null) return null
    return verifyDpopProof(header, checkFor(deps, request.method, path))
  } catch (err) {
    if (err instanceof OAuthError) throw proofRefused(request, deps, err)
    throw err
  }
}

/** Single use of a proof (§11.1): a second presentation is `invalid_dpop_proof`. */
export async function claimProof(request: FastifyRequest, deps: AuthDeps, proof: VerifiedDpopProof, clientId?: string): Promise<void> {
  // Kept until the proof would be refused as too old anyway (a future iat included).
  const until = replayUntil(proof, PROOF_MAX_AGE_S, PROOF_CLOCK_TOLERANCE_S)
  if (!(await deps.dpop.replay.claim(replayKey(proof), until))) {
    throw proofRefused(request, deps, new InvalidDpopProof('the DPoP proof has already been used', { detail: 'replay' }), clientId)
  }
  deps.metrics.dpopProofs.inc({ outcome: 'accepted' })
}

/**
 * For an endpoint that accepts a DPoP header (/par: RFC 9449 §10.1): the verified and claimed
 * proof of this request to `path`, or null when it carries none.
 */
export async function proofOfRequest(request: FastifyRequest, deps: AuthDeps, path: string): Promise<VerifiedDpopProof | null> {
  const proof = readProof(request, deps, path)
  if (proof !== null) await claimProof(request, deps, proof)
  return proof
}

/**
 * /token, once the client is known and the request otherwise acceptable: a client registered
 * with `dpop_bound_access_tokens` must send a proof (§5.2); a proof sent is claimed (single use).
 * Returns the key the tokens are bound to, or undefined for bearer tokens.
 */
export async function tokenRequestProof(request: FastifyRequest, deps: AuthDeps, client: Client, proof: VerifiedDpopProof | null): Promise<BoundKey | undefined> {
  if (proof === null) {
    if (!client.dpopBoundAccessTokens) return undefined
    throw proofRefused(request, deps, new InvalidDpopProof('this client must send a DPoP proof', { detail: 'no proof' }), client.id)
  }
  await claimProof(request, deps, proof, client.id)
  return { jkt: proof.jkt }
}

/** RFC 9449 §5.1: a token response says `DPoP` for a DPoP-bound access token. */
export function tokenType(dpop: BoundKey | undefined): 'Bearer' | 'DPoP' {
  return dpop === undefined ? 'Bearer' : 'DPoP'
}

/**
 * Authorization code binding (§10, `dpop_jkt` at /authorize): a code bound to a key is exchanged
 * only with a proof of that key.
 */
export function checkCodeBinding(boundJkt: string | undefined, proof: BoundKey | null): void {
  if (boundJkt === undefined) return
  if (proof === null) throw new InvalidDpopProof('the authorization code is bound to a DPoP key: send a proof of it', { detail: 'code bound, no proof' })
  if (proof.jkt !== boundJkt) throw new InvalidDpopProof('the DPoP proof is not made with the key the authorization code is bound to', { detail: 'code key mismatch' })
}

/**
 * The sender constraint of an access token presented to one of our endpoints (/userinfo, §7):
 * the verifier's `checkSenderConstraint` against the token's `cnf.jkt`, then the proof's single
 * use. Null for a bearer token presented as Bearer. Errors are the verifier's (`invalid_token`,
 * `invalid_dpop_proof`, `use_dpop_nonce`); the route turns them into its challenges.
 */
export async function presentedTokenProof(
  request: FastifyRequest,
  deps: AuthDeps,
  presented: PresentedAccessToken,
  boundJkt: string | undefined,
  path: string,
): Promise<VerifiedDpopProof | null> {
  let proof: VerifiedDpopProof | null
  try {
    proof = checkSenderConstraint(presented, boundJkt, request.headers.dpop, checkFor(deps, request.method, path))
  } catch (err) {
    if (err instanceof OAuthError) throw proofRefused(request, deps, err)
    throw err
  }
  if (proof !== null) await claimProof(request, deps, proof)
  return proof
}

/** The `cnf.jkt` of an access token's claims: undefined when unbound, null when `cnf` is malformed. */
export function confirmationKey(claims: Record<string, unknown>): string | undefined | null {
  const cnf = claims.cnf
  if (cnf === undefined) return undefined
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return null
  const jkt = (cnf as Record<string, unknown>).jkt
  return typeof jkt === 'string' && jkt.length > 0 ? jkt : null
}
