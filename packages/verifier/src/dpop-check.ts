import { InvalidDpopProof, TemporarilyUnavailable, isOAuthError, type PresentedAccessToken } from '@gatehouse/service-kit'
import type { AuthContext } from './auth-context.js'
import { DpopNonces, MemoryDpopReplayCache, replayKey, replayUntil, type DpopReplayCache, type VerifiedDpopProof } from './dpop-proof.js'
import { checkSenderConstraint } from './dpop-request.js'
import { DpopRequired } from './errors.js'
import type { DpopRejectionReason, VerifierMetrics } from './metrics.js'
import type { Clock, ResolvedDpopOptions } from './options.js'

/** The request a token came with, as far as a proof names it (RFC 9449 §4.2 `htm`, `htu`). */
export interface DpopRequestTarget {
  method: string
  /** The request target as received: path and query (the query is ignored, §4.3). */
  path: string
  /** `scheme://host[:port]` the request was sent to, used when no `publicUrl` is configured. */
  origin(): string
}

/** The closed set of reasons counted in `…_dpop_rejections_total{reason}` (never sent). */
function reasonOf(detail: string | undefined): DpopRejectionReason {
  switch (detail) {
    case 'dpop_downgrade':
      return 'downgrade'
    case 'dpop_unbound':
      return 'unbound_token'
    case 'dpop_jkt_mismatch':
      return 'key_mismatch'
    case 'dpop_required':
      return 'required'
    case 'dpop headers':
      return 'multiple_proofs'
    case 'no proof':
      return 'missing_proof'
    case 'replay':
    case 'htm':
    case 'htu':
    case 'ath':
    case 'nonce':
    case 'signature':
      return detail
    case 'iat future':
    case 'iat stale':
    case 'iat':
      return 'iat'
    default:
      return detail?.startsWith('alg ') === true ? 'alg' : 'invalid_proof'
  }
}

/**
 * The resource server's half of DPoP (RFC 9449 §7), framework-free: after the token itself is
 * verified (or found in the verified-token cache, which holds tokens, never proofs), the sender
 * constraint of the token as presented (`checkSenderConstraint`: scheme, proof, `ath`, key), then
 * the proof's single use (§11.1) through a replay cache. Every request pays for its proof: a
 * cached token skips its signature check, never this.
 */
export class DpopChecker {
  readonly algorithms: readonly string[]
  /** Bearer tokens are refused everywhere (option `dpop.required`). */
  readonly required: boolean
  readonly #o: ResolvedDpopOptions
  readonly #clock: Clock
  readonly #clockTolerance: number
  readonly #replay: DpopReplayCache
  readonly #nonces: DpopNonces | undefined
  readonly #nonceCheck: ((nonce: string | undefined) => boolean) | undefined
  readonly #metrics: VerifierMetrics
  #accepted = 0

  constructor(o: ResolvedDpopOptions, clockTolerance: number, clock: Clock, metrics: VerifierMetrics) {
    this.#o = o
    this.algorithms = o.algorithms
    this.required = o.required
    this.#clock = clock
    this.#clockTolerance = clockTolerance
    this.#metrics = metrics
    this.#replay = o.replayCache ?? new MemoryDpopReplayCache(clock, o.replayMaxEntries)
    this.#nonces = o.nonceSecret === undefined ? undefined : new DpopNonces(o.nonceSecret, clock, o.nonceWindowMs)
    const nonces = this.#nonces
    this.#nonceCheck = nonces === undefined ? undefined : (nonce) => nonces.valid(nonce)
  }

  /** Proofs accepted so far (read by the metrics at scrape time). */
  get accepted(): number {
    return this.#accepted
  }

  /** The nonce to send in `DPoP-Nonce` now, when server nonces are on. */
  nonce(): string | undefined {
    return this.#nonces?.current()
  }

  /** The URL a proof's `htu` must name: `publicUrl` + path when configured, else the request's own origin + path. */
  htu(target: DpopRequestTarget): string {
    return `${this.#o.publicUrl ?? target.origin()}${target.path}`
  }

  /**
   * True when `check` would return null without looking at the request: a Bearer token bound to
   * no key, where DPoP is not required (the common case; the caller skips building the target).
   */
  bearerOnly(presented: PresentedAccessToken, auth: AuthContext): boolean {
    return presented.scheme === 'Bearer' && auth.jkt === undefined && !this.required
  }

  /**
   * RFC 9449 §7 for a verified token as presented. Returns the proof (null for a bearer token
   * presented as Bearer where that is allowed); throws `invalid_token`, `invalid_dpop_proof` or
   * `use_dpop_nonce`. Synchronous unless the replay cache answers with a promise.
   */
  check(
    presented: PresentedAccessToken,
    auth: AuthContext,
    proofHeader: string | string[] | undefined,
    target: DpopRequestTarget,
  ): VerifiedDpopProof | null | Promise<VerifiedDpopProof> {
    try {
      // A joined header value ("a, b": Node folds repeated headers) is more than one proof: a JWS has no comma.
      const header = typeof proofHeader === 'string' && proofHeader.includes(',') ? proofHeader.split(',') : proofHeader
      const proof = checkSenderConstraint(presented, auth.jkt, header, {
        method: target.method,
        url: this.htu(target),
        now: Math.floor(this.#clock() / 1000),
        maxAgeSeconds: this.#o.maxAgeSeconds,
        clockToleranceSeconds: this.#clockTolerance,
        nonce: this.#nonceCheck,
        algorithms: this.#o.algorithms,
      })
      if (proof === null) {
        if (this.required) throw new DpopRequired()
        return null
      }
      // Remembered for as long as the proof could be accepted (its iat window, with the tolerance).
      const until = replayUntil(proof, this.#o.maxAgeSeconds, this.#clockTolerance)
      const first = this.#replay.claim(replayKey(proof), until)
      if (typeof first === 'boolean') return this.#claimed(first, proof)
      // A shared cache that cannot answer: the proof cannot be checked (503), never a 500.
      return first
        .then(
          (f) => f,
          (cause: unknown) => {
            throw new TemporarilyUnavailable('the DPoP proof cannot be checked right now', { detail: 'dpop_replay_cache', cause })
          },
        )
        .then((f) => this.#claimed(f, proof))
        .catch((err: unknown) => this.#rejected(err))
    } catch (err) {
      return this.#rejected(err)
    }
  }

  #claimed(first: boolean, proof: VerifiedDpopProof): VerifiedDpopProof {
    if (!first) throw new InvalidDpopProof('the DPoP proof was already used', { detail: 'replay' })
    this.#accepted++
    return proof
  }

  #rejected(err: unknown): never {
    if (isOAuthError(err)) this.#metrics.dpopRejected(err.code === 'temporarily_unavailable' ? 'replay_cache_unavailable' : reasonOf(err.detail))
    throw err
  }
}
