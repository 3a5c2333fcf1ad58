import { EventEmitter } from 'node:events'
import type { RevocationEvent } from '@gatehouse/service-kit'
import type { CryptoKey, JWTHeaderParameters } from 'jose'
import { AccessTokenRulebook, toInvalidToken } from './access-token.js'
import type { AuthContext } from './auth-context.js'
import { DenyList } from './deny-list.js'
import { DpopChecker } from './dpop-check.js'
import { invalidToken, type InvalidTokenReason } from './errors.js'
import { JwksCache, type JwksFetchResult, type KeysChange } from './jwks-cache.js'
import { VerifierMetrics } from './metrics.js'
import { resolveOptions, type ResolvedOptions, type VerifierOptions } from './options.js'
import { RevocationFeed } from './revocation-feed.js'
import { recordVerification, tracer, VERIFY_SPAN } from './tracing.js'
import { VerifiedTokenCache } from './verified-cache.js'

export interface VerifierEvents {
  /** The JWKS changed (a key added or removed). */
  'keys-updated': [KeysChange]
  /** A JWKS fetch (or discovery + fetch) completed: updated, not modified, or failed. */
  'jwks-fetch': [JwksFetchResult]
  /** A revocation was applied (from the feed, its catch-up read, or `revoke()`). */
  revoked: [RevocationEvent]
  /** The revocation feed (re)subscribed and read the recent set. */
  'revocations-synced': [number]
}

export interface VerifierStats {
  /** Tokens accepted from the verified-token cache. */
  cacheHits: number
  /** Tokens accepted after a signature check. */
  signatureVerifications: number
  cachedTokens: number
  deniedSids: number
  /** HTTP requests made for discovery and the JWKS. */
  jwksFetches: number
  jwksKeys: number
}

export type RevocationFeedStatus = 'disabled' | 'connecting' | 'live'

/**
 * Verifies Gatehouse access tokens (RFC 9068, DESIGN §4) without any web
 * framework: the fastify plugin is a thin adapter over this.
 */
export class Verifier {
  readonly issuer: string
  readonly audience: string
  readonly events = new EventEmitter<VerifierEvents>()
  readonly metrics: VerifierMetrics
  /** The DPoP checks of a verified token as presented (RFC 9449 §7), with their replay cache and nonces. */
  readonly dpop: DpopChecker
  readonly #o: ResolvedOptions
  readonly #jwks: JwksCache
  readonly #cache: VerifiedTokenCache | undefined
  readonly #deny: DenyList
  readonly #feed: RevocationFeed | undefined
  readonly #rulebook: AccessTokenRulebook
  #started = false
  #cacheHits = 0
  #signatureChecks = 0

  constructor(options: VerifierOptions) {
    const o = resolveOptions(options)
    this.#o = o
    this.issuer = o.issuer
    this.audience = o.audience
    this.#cache = o.cacheMaxEntries > 0 ? new VerifiedTokenCache(o.cacheMaxEntries) : undefined
    this.#deny = new DenyList(o.revocationMaxEntries, o.clockTolerance)
    this.metrics = new VerifierMetrics(o.registry, o.metricsPrefix, {
      cacheAgeSeconds: () => this.#jwks.cacheAgeSeconds(),
      keyCount: () => this.#jwks.keyCount,
      denyListSize: () => this.#deny.size,
      feedConnected: () => (this.#feed === undefined ? -1 : this.#feed.live ? 1 : 0),
      verifications: () => ({ cache: this.#cacheHits, signature: this.#signatureChecks }),
      dpopAccepted: () => this.dpop.accepted,
    })
    this.dpop = new DpopChecker(o.dpop, o.clockTolerance, o.clock, this.metrics)
    this.#jwks = new JwksCache({
      issuer: o.issuer,
      jwksUri: o.jwksUri,
      algorithms: o.algorithms,
      fetch: o.fetch,
      clock: o.clock,
      logger: o.logger,
      metrics: this.metrics,
      options: o.jwks,
      onKeysChanged: (change) => this.#onKeysChanged(change),
      onFetched: (result) => this.events.emit('jwks-fetch', result),
    })
    this.#feed =
      o.redis === undefined
        ? undefined
        : new RevocationFeed({
            redis: o.redis,
            clock: o.clock,
            logger: o.logger,
            onRevocation: (event) => this.revoke(event),
            onSynced: (count) => this.events.emit('revocations-synced', count),
          })
    // Built once: the per-request work is the signature and the claim checks, nothing else.
    // A kid the JWKS holds is checked on the rulebook's node:crypto fast path; any other goes
    // through jose and #resolveKey, which refetches for an unknown kid.
    this.#rulebook = new AccessTokenRulebook(
      this.#resolveKey,
      {
        issuer: o.issuer,
        audience: o.audience,
        algorithms: o.algorithms,
        clockTolerance: o.clockTolerance,
        maxTokenLength: o.maxTokenLength,
      },
      (kid, alg) => this.#jwks.lookupNode(kid, alg),
    )
  }

  /** Starts loading keys and, when configured, the revocation subscription. Idempotent; never throws. */
  start(): void {
    if (this.#started) return
    this.#started = true
    void this.#jwks.refresh()
    this.#feed?.start()
  }

  /** Resolves once the JWKS has been loaded. */
  ready(): Promise<void> {
    this.start()
    return this.#jwks.ready()
  }

  /** Keys are loaded (and not past their stale-if-error limit): the service may take traffic. */
  isReady(): boolean {
    return this.#jwks.isReady()
  }

  revocationFeedStatus(): RevocationFeedStatus {
    if (this.#feed === undefined) return 'disabled'
    return this.#feed.live ? 'live' : 'connecting'
  }

  /**
   * The synchronous hot path: the token's context when it was verified
   * before, has not reached `exp` and its family is not revoked; otherwise
   * undefined (call `verify`).
   */
  verifyCached(token: string): AuthContext | undefined {
    const cache = this.#cache
    if (cache === undefined || token.length > this.#o.maxTokenLength) return undefined
    const now = this.#o.clock()
    const auth = cache.get(token, now)
    if (auth === undefined) return undefined
    if (auth.sid !== undefined && this.#deny.size > 0 && this.#deny.has(auth.sid, now)) {
      cache.delete(token)
      return undefined
    }
    this.#cacheHits++
    return auth
  }

  /**
   * Verifies an access token. Rejects with an `OAuthError`: `invalid_token`
   * (401, the reason in `detail`) or `temporarily_unavailable` (503) when no
   * key can be obtained to check a token that could be valid.
   */
  async verify(token: string): Promise<AuthContext> {
    // One `gatehouse.verify` span (tracing.ts): a key fetch it causes is its child.
    return await tracer.startActiveSpan('gatehouse.verify', VERIFY_SPAN, async (span) => {
      try {
        if (typeof token !== 'string' || token.length === 0) throw invalidToken('malformed')
        const auth = this.verifyCached(token) ?? (await this.#verify(token))
        recordVerification(span, token, undefined)
        return auth
      } catch (err) {
        const e = toInvalidToken(err)
        this.metrics.rejected(e.code === 'temporarily_unavailable' ? 'keys_unavailable' : ((e.detail ?? 'verification_error') as InvalidTokenReason))
        recordVerification(span, token, e)
        throw e
      } finally {
        span.end()
      }
    })
  }

  /** Denies every access token of a family until `exp` (DESIGN §6) and drops them from the cache. */
  revoke(event: RevocationEvent): void {
    const dropped = this.#deny.add(event.sid, event.exp, this.#o.clock())
    if (dropped > 0) this.#o.logger.warn({ dropped }, 'revocation deny-list full: dropped the entries expiring soonest')
    this.#cache?.deleteBySid(event.sid)
    this.metrics.revocations(1)
    this.events.emit('revoked', event)
  }

  stats(): VerifierStats {
    return {
      cacheHits: this.#cacheHits,
      signatureVerifications: this.#signatureChecks,
      cachedTokens: this.#cache?.size ?? 0,
      deniedSids: this.#deny.size,
      jwksFetches: this.#jwks.fetchCount,
      jwksKeys: this.#jwks.keyCount,
    }
  }

  /** Fetches the JWKS now (joins a fetch in flight). Never rejects. */
  refreshKeys(): Promise<void> {
    return this.#jwks.refresh()
  }

  async close(): Promise<void> {
    this.#jwks.close()
    await this.#feed?.close()
  }

  async #verify(token: string): Promise<AuthContext> {
    const now = this.#o.clock()
    // With the real clock the rulebook reads the time itself (on jose's route it then builds no options per call).
    const { auth, header } = await this.#rulebook.verify(token, this.#o.clock === Date.now ? undefined : now)
    if (auth.sid !== undefined && this.#deny.has(auth.sid, now)) throw invalidToken('revoked')
    this.#signatureChecks++
    const kid = header.kid as string
    // The key may have left the JWKS while we verified: then do not cache.
    if (this.#cache !== undefined && this.#jwks.lookup(kid, header.alg) !== undefined) this.#cache.set(token, auth, kid, now)
    return auth
  }

  /** The key for a header the rulebook has already checked (allowed `alg`, a `kid`, no key-choosing members). */
  readonly #resolveKey = (header: JWTHeaderParameters): CryptoKey | Promise<CryptoKey> => {
    const { kid, alg } = header
    return this.#jwks.lookup(kid as string, alg) ?? this.#jwks.resolve(kid as string, alg)
  }

  #onKeysChanged(change: KeysChange): void {
    if (change.removed.length > 0 && this.#cache !== undefined) {
      const n = this.#cache.deleteByKid(new Set(change.removed))
      if (n > 0) this.#o.logger.info({ removed: change.removed, dropped: n }, 'verified-token cache: dropped tokens of removed keys')
    }
    this.events.emit('keys-updated', change)
  }
}

export function createVerifier(options: VerifierOptions): Verifier {
  return new Verifier(options)
}
