import { Counter, Gauge, Registry } from 'prom-client'
import type { InvalidTokenReason } from './errors.js'

export type JwksFetchOutcome = 'updated' | 'not_modified' | 'failed'
export type JwksFailureReason = 'discovery' | 'network' | 'timeout' | 'http_status' | 'invalid_response' | 'no_usable_keys'

/** Why a DPoP request was refused: a closed set (the proof's own values never become labels). */
export type DpopRejectionReason =
  | 'downgrade'
  | 'unbound_token'
  | 'key_mismatch'
  | 'required'
  | 'multiple_proofs'
  | 'missing_proof'
  | 'replay'
  | 'htm'
  | 'htu'
  | 'iat'
  | 'ath'
  | 'nonce'
  | 'alg'
  | 'signature'
  | 'invalid_proof'
  | 'replay_cache_unavailable'

/** Values read only when Prometheus scrapes, so the hot path pays nothing for them. */
export interface MetricSources {
  cacheAgeSeconds(): number
  keyCount(): number
  denyListSize(): number
  feedConnected(): number
  verifications(): { cache: number; signature: number }
  dpopAccepted(): number
}

/**
 * The verifier's Prometheus metrics. Per-request counts are plain integers
 * kept by the verifier and turned into counters at scrape time; only rare
 * events (rejections, fetches, revocations) touch prom-client directly.
 */
export class VerifierMetrics {
  readonly registry: Registry
  readonly #fetches: Counter<'outcome'>
  readonly #failures: Counter<'reason'>
  readonly #rejections: Counter<'reason'>
  readonly #revocations: Counter
  readonly #dpopRejections: Counter<'reason'>

  constructor(registry: Registry | undefined, prefix: string, sources: MetricSources) {
    this.registry = registry ?? new Registry()
    const registers = [this.registry]
    // A value read from the verifier when Prometheus scrapes.
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({ name: `${prefix}${name}`, help, registers, collect() { this.set(read()) } })
    }
    this.#fetches = new Counter({
      name: `${prefix}jwks_fetches_total`,
      help: 'JWKS fetches by outcome (updated, not_modified, failed)',
      labelNames: ['outcome'],
      registers,
    })
    this.#failures = new Counter({
      name: `${prefix}jwks_fetch_failures_total`,
      help: 'Failed JWKS or discovery fetches by reason',
      labelNames: ['reason'],
      registers,
    })
    gauge('jwks_cache_age_seconds', 'Seconds since the JWKS was last fetched or revalidated (-1 before the first load)', () => sources.cacheAgeSeconds())
    gauge('jwks_keys', 'Usable verification keys in the JWKS cache', () => sources.keyCount())
    this.#rejections = new Counter({
      name: `${prefix}token_rejections_total`,
      help: 'Access tokens refused, by internal reason',
      labelNames: ['reason'],
      registers,
    })
    let reported = { cache: 0, signature: 0 }
    new Counter({
      name: `${prefix}token_verifications_total`,
      help: 'Access tokens accepted, by source (cache hit or signature check)',
      labelNames: ['source'],
      registers,
      collect() {
        const now = sources.verifications()
        this.inc({ source: 'cache' }, now.cache - reported.cache)
        this.inc({ source: 'signature' }, now.signature - reported.signature)
        reported = now
      },
    })
    this.#revocations = new Counter({
      name: `${prefix}revocations_received_total`,
      help: 'Revocation events received from the feed or its catch-up read',
      registers,
    })
    let dpopReported = 0
    new Counter({
      name: `${prefix}dpop_proofs_accepted_total`,
      help: 'DPoP proofs accepted with their token (RFC 9449 §7)',
      registers,
      collect() {
        const now = sources.dpopAccepted()
        this.inc(now - dpopReported)
        dpopReported = now
      },
    })
    this.#dpopRejections = new Counter({
      name: `${prefix}dpop_rejections_total`,
      help: 'Requests refused by the DPoP checks (sender constraint, proof, replay), by reason',
      labelNames: ['reason'],
      registers,
    })
    gauge('revocation_denylist_size', 'Revoked sids currently denied', () => sources.denyListSize())
    gauge('revocation_feed_connected', '1 when the revocation subscription is live, 0 when not, -1 when not configured', () => sources.feedConnected())
  }

  jwksFetch(outcome: JwksFetchOutcome): void {
    this.#fetches.inc({ outcome })
  }

  jwksFailure(reason: JwksFailureReason): void {
    this.#fetches.inc({ outcome: 'failed' })
    this.#failures.inc({ reason })
  }

  rejected(reason: InvalidTokenReason | 'keys_unavailable'): void {
    this.#rejections.inc({ reason })
  }

  dpopRejected(reason: DpopRejectionReason): void {
    this.#dpopRejections.inc({ reason })
  }

  revocations(n: number): void {
    if (n > 0) this.#revocations.inc(n)
  }
}
