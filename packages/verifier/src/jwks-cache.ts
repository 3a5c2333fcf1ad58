import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { importJWK, type CryptoKey, type JWK } from 'jose'
import { invalidToken, keysUnavailable } from './errors.js'
import { tracer } from './tracing.js'
import { JwsVerifyKey } from './jws-key.js'
import type { JwksFailureReason, JwksFetchOutcome, VerifierMetrics } from './metrics.js'
import type { Clock, FetchLike, ResolvedJwksOptions, VerifierAlgorithm, VerifierLogger } from './options.js'

/**
 * One key for one algorithm, imported twice, once per JWKS response (never per request): as
 * jose's CryptoKey (the rulebook's jose route) and as a `node:crypto` key (its fast path; absent
 * when node:crypto cannot take the JWK, and then jose's route serves the key alone).
 */
interface ImportedKey {
  readonly crypto: CryptoKey
  readonly node: JwsVerifyKey | undefined
}

/** kid -> alg -> imported key. */
type KeyTable = Map<string, Map<string, ImportedKey>>

export interface KeysChange {
  kids: readonly string[]
  added: readonly string[]
  removed: readonly string[]
}

export interface JwksCacheConfig {
  issuer: string
  jwksUri: string | undefined
  algorithms: readonly VerifierAlgorithm[]
  fetch: FetchLike
  clock: Clock
  logger: VerifierLogger
  metrics: VerifierMetrics
  options: ResolvedJwksOptions
  onKeysChanged: (change: KeysChange) => void
  /** Told of every completed fetch (after it was applied or recorded). */
  onFetched: (result: JwksFetchResult) => void
}

export interface JwksFetchResult {
  outcome: JwksFetchOutcome
  /** Why it failed, for `failed`. */
  reason?: JwksFailureReason
}

class JwksFetchError extends Error {
  readonly reason: JwksFailureReason
  constructor(reason: JwksFailureReason, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'JwksFetchError'
    this.reason = reason
  }
}

/** Refresh this far into a lifetime, so keys are renewed ahead of expiry and requests never wait for it. */
const REFRESH_AHEAD_RATIO = 0.8
/**
 * While the issuer is failing, an unknown kid may probe it this often, free of the cool-down and
 * the early-refetch budget: a failed fetch says nothing about kids, and the issuer that comes back
 * (restarted, perhaps with a key we never saw) must be trusted again within seconds, not after a
 * cool-down spent during the outage. Bounded: one fetch per interval, shared by every caller.
 */
const OUTAGE_PROBE_MS = 1000
const MAX_TIMER_MS = 2 ** 31 - 1

const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  RSA: ['kty', 'n', 'e'],
  EC: ['kty', 'crv', 'x', 'y'],
  OKP: ['kty', 'crv', 'x'],
}

function candidateAlgorithms(jwk: Record<string, unknown>, allowed: readonly VerifierAlgorithm[]): VerifierAlgorithm[] {
  const fits = (alg: VerifierAlgorithm): boolean => {
    switch (jwk.kty) {
      case 'RSA':
        return alg.startsWith('RS') || alg.startsWith('PS')
      case 'EC':
        return (
          (alg === 'ES256' && jwk.crv === 'P-256') ||
          (alg === 'ES384' && jwk.crv === 'P-384') ||
          (alg === 'ES512' && jwk.crv === 'P-521')
        )
      case 'OKP':
        return (alg === 'EdDSA' || alg === 'Ed25519') && jwk.crv === 'Ed25519'
      default:
        return false
    }
  }
  if (typeof jwk.alg === 'string') {
    const alg = jwk.alg as VerifierAlgorithm
    return allowed.includes(alg) && fits(alg) ? [alg] : []
  }
  return allowed.filter(fits)
}

/** Parses a JWK Set into imported public keys, from an allow-list of public members only. */
async function importKeySet(body: unknown, algorithms: readonly VerifierAlgorithm[], logger: VerifierLogger): Promise<KeyTable> {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { keys?: unknown }).keys)) {
    throw new JwksFetchError('invalid_response', 'the JWKS response is not a JWK Set')
  }
  const table: KeyTable = new Map()
  for (const raw of (body as { keys: unknown[] }).keys) {
    if (typeof raw !== 'object' || raw === null) continue
    const jwk = raw as Record<string, unknown>
    const kid = jwk.kid
    if (typeof kid !== 'string' || kid.length === 0) continue // tokens must name their key
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) continue
    if (table.has(kid)) {
      logger.warn({ kid }, 'JWKS names a kid twice; keeping the first key')
      continue
    }
    const members = PUBLIC_MEMBERS[jwk.kty as string]
    if (members === undefined) continue
    const pub: Record<string, unknown> = {}
    for (const m of members) pub[m] = jwk[m]
    const byAlg = new Map<string, ImportedKey>()
    // One node:crypto key object per kid, shared by its algorithms.
    let keyObject: KeyObject | undefined
    try {
      keyObject = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' })
    } catch {
      keyObject = undefined
    }
    for (const alg of candidateAlgorithms(jwk, algorithms)) {
      try {
        const key = (await importJWK(pub as JWK, alg)) as CryptoKey
        const modulus = (key.algorithm as { modulusLength?: number }).modulusLength
        if (modulus !== undefined && modulus < 2048) {
          logger.warn({ kid, alg, modulus }, 'JWKS key skipped: RSA modulus below 2048 bits')
          continue
        }
        byAlg.set(alg, { crypto: key, node: keyObject === undefined ? undefined : JwsVerifyKey.of(keyObject, alg) })
      } catch (err) {
        logger.warn({ kid, alg, err: (err as Error).message }, 'JWKS key skipped: it cannot be imported')
      }
    }
    if (byAlg.size > 0) table.set(kid, byAlg)
  }
  if (table.size === 0) throw new JwksFetchError('no_usable_keys', 'the JWKS has no usable verification key')
  return table
}

/** `Cache-Control: max-age` in ms, or undefined. `no-cache`/`no-store` mean "as short as allowed". */
function maxAgeMs(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined
  let result: number | undefined
  for (const part of cacheControl.split(',')) {
    const directive = part.trim().toLowerCase()
    if (directive === 'no-cache' || directive === 'no-store') return 0
    if (directive.startsWith('max-age=')) {
      const n = Number(directive.slice(8).replace(/^"|"$/g, ''))
      if (Number.isFinite(n) && n >= 0) result = n * 1000
    }
  }
  return result
}

async function readBody(res: Response, maxBytes: number, what: string): Promise<unknown> {
  const declared = Number(res.headers.get('content-length') ?? '0')
  if (declared > maxBytes) throw new JwksFetchError('invalid_response', `the ${what} response is too large`)
  const text = await res.text()
  if (Buffer.byteLength(text) > maxBytes) throw new JwksFetchError('invalid_response', `the ${what} response is too large`)
  try {
    return JSON.parse(text) as unknown
  } catch (cause) {
    throw new JwksFetchError('invalid_response', `the ${what} response is not JSON`, { cause })
  }
}

/** Settles with `work`, or rejects when `signal` aborts first (for fetch implementations that ignore it). */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new JwksFetchError('timeout', 'the JWKS fetch timed out'))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new JwksFetchError('timeout', 'the JWKS fetch timed out'))
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

/**
 * The issuer's signing keys, per DESIGN §4 (modelled on jose's remote JWKS):
 * - found through the issuer's discovery document unless `jwksUri` is given;
 * - cached in memory for `Cache-Control: max-age` (bounded), refreshed ahead
 *   of expiry in the background, revalidated with `If-None-Match`;
 * - an unknown `kid` refetches at most once per cool-down, plus a small
 *   budget of early refetches refilled one per cool-down, so a flood of
 *   random kids cannot amplify into fetches; while the issuer is failing,
 *   an unknown kid probes it at most once a second instead, so a returning
 *   issuer's new key verifies within about a second;
 * - one fetch in flight at a time, shared by everyone who needs it; a slow
 *   older response that lands after a newer one has been applied is ignored;
 * - when the issuer is unreachable the cached keys keep verifying
 *   (stale-if-error) for up to `maxStaleMs` past expiry; a token whose key
 *   cannot be obtained is `temporarily_unavailable`, not `invalid_token`.
 */
export class JwksCache {
  readonly #c: JwksCacheConfig
  readonly #o: ResolvedJwksOptions
  #keys: KeyTable = new Map()
  #keyCount = 0
  #etag: string | undefined
  #jwksUri: string | undefined
  #loadedAt = Number.NEGATIVE_INFINITY
  #refreshAt = Number.NEGATIVE_INFINITY
  #staleUntil = Number.NEGATIVE_INFINITY
  #lastStartAt = Number.NEGATIVE_INFINITY
  #lastFailed = false
  #failures = 0
  #retryAt = Number.NEGATIVE_INFINITY
  #inflight: Promise<void> | null = null
  #startedSeq = 0
  #appliedSeq = 0
  #budget: number
  #budgetAt = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | undefined
  #closed = false
  readonly #abort = new AbortController()
  #fetchCount = 0
  #resolveReady!: () => void
  readonly #ready: Promise<void>

  constructor(config: JwksCacheConfig) {
    this.#c = config
    this.#o = config.options
    this.#jwksUri = config.jwksUri
    this.#budget = this.#o.earlyRefetches
    this.#ready = new Promise((resolve) => {
      this.#resolveReady = resolve
    })
  }

  /** Resolves once keys have been loaded (the service may report ready). */
  ready(): Promise<void> {
    return this.#ready
  }

  /** Keys are loaded and not past their stale-if-error limit. */
  isReady(): boolean {
    return this.#keyCount > 0 && this.#c.clock() < this.#staleUntil
  }

  get keyCount(): number {
    return this.#keyCount
  }

  /** HTTP requests made so far (discovery and JWKS). */
  get fetchCount(): number {
    return this.#fetchCount
  }

  cacheAgeSeconds(): number {
    return this.#loadedAt === Number.NEGATIVE_INFINITY ? -1 : (this.#c.clock() - this.#loadedAt) / 1000
  }

  /**
   * The hot path: a synchronous map lookup. A key past its refresh point is
   * still returned (and a background refresh started); past the
   * stale-if-error limit it is not.
   */
  lookup(kid: string, alg: string): CryptoKey | undefined {
    return this.#current(kid, alg)?.crypto
  }

  /**
   * The same key as `lookup`, under the same rules, as a `node:crypto` key for the rulebook's
   * synchronous fast path; undefined when `lookup` would be, or when only jose holds the key.
   */
  lookupNode(kid: string, alg: string): JwsVerifyKey | undefined {
    return this.#current(kid, alg)?.node
  }

  /** The miss path: a kid (or alg) we do not hold. Refetches within the limits above. */
  async resolve(kid: string, alg: string): Promise<CryptoKey> {
    // A fetch we join may have started before the key was published, so after
    // joining one we may try once more; a fetch we started ourselves is final.
    for (let round = 0; round < 2; round++) {
      if (this.#inflight !== null) {
        await this.#inflight
        // It failed: the issuer is not answering, and trying again at once would not change that.
        if (this.#lastFailed) break
      } else if (this.#mayRefetchForUnknownKid(this.#c.clock())) {
        await this.refresh()
        round = 2
      } else {
        break
      }
      const key = this.#usableKey(kid, alg)
      if (key !== undefined) return key
    }
    const key = this.#usableKey(kid, alg)
    if (key !== undefined) return key
    if (!this.isReady()) throw keysUnavailable('jwks_unavailable')
    // Keys are held but the last attempt to refresh them failed: the kid may
    // be a new one we could not fetch. Refuse to guess (DESIGN §4: not a silent 401).
    if (this.#lastFailed) throw keysUnavailable('jwks_refresh_failing')
    throw invalidToken('unknown_kid')
  }

  /** Starts (or joins) a fetch. Never rejects: failures are recorded, logged and counted. */
  refresh(): Promise<void> {
    if (this.#inflight !== null) return this.#inflight
    if (this.#closed) return Promise.resolve()
    const seq = ++this.#startedSeq
    this.#lastStartAt = this.#c.clock()
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#o.timeoutMs)])
    // One `gatehouse.jwks.fetch` span per fetch (joined fetches share it): a child of the request
    // whose unknown kid or due refresh started it, a trace of its own when the timer did.
    const span = tracer.startSpan('gatehouse.jwks.fetch', { kind: SpanKind.INTERNAL })
    const work = context.with(trace.setSpan(context.active(), span), () => this.#fetchAndApply(seq, signal))
    // A fetch implementation that ignores the signal may still settle later; the sequence check handles that.
    work.catch(() => {})
    let result: JwksFetchResult = { outcome: 'failed' }
    const current: Promise<void> = raceAbort(work, signal)
      .then(
        (outcome) => {
          result = { outcome }
        },
        (err: unknown) => {
          result = { outcome: 'failed', reason: this.#recordFailure(seq, err) }
        },
      )
      .finally(() => {
        if (span.isRecording()) {
          span.setAttribute('gatehouse.jwks.outcome', result.outcome)
          if (result.reason !== undefined) span.setAttribute('gatehouse.jwks.reason', result.reason)
          if (result.outcome === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: result.reason ?? 'failed' })
        }
        span.end()
        if (this.#inflight === current) this.#inflight = null
        // Resolved here rather than on apply, so that whoever awaited ready() finds no fetch in flight.
        if (this.#keyCount > 0) this.#resolveReady()
        this.#schedule()
        this.#c.onFetched(result)
      })
    this.#inflight = current
    return current
  }

  close(): void {
    this.#closed = true
    this.#abort.abort()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #usableKey(kid: string, alg: string): CryptoKey | undefined {
    if (this.#c.clock() >= this.#staleUntil) return undefined
    return this.#keys.get(kid)?.get(alg)?.crypto
  }

  #current(kid: string, alg: string): ImportedKey | undefined {
    const key = this.#keys.get(kid)?.get(alg)
    if (key === undefined) return undefined
    const now = this.#c.clock()
    if (now >= this.#refreshAt) {
      this.#due(now)
      if (now >= this.#staleUntil) return undefined
    }
    return key
  }

  /** A refresh is due: start one unless one is running or we are backing off after a failure. */
  #due(now: number): void {
    if (this.#inflight !== null || this.#closed) return
    if (this.#lastFailed && now < this.#retryAt) return
    void this.refresh()
  }

  #mayRefetchForUnknownKid(now: number): boolean {
    if (now - this.#lastStartAt >= this.#o.cooldownMs) return true
    if (this.#lastFailed && now - this.#lastStartAt >= OUTAGE_PROBE_MS) return true
    const cooldown = this.#o.cooldownMs
    if (this.#budgetAt === Number.NEGATIVE_INFINITY) this.#budgetAt = now
    if (cooldown > 0 && now - this.#budgetAt >= cooldown) {
      const refill = Math.floor((now - this.#budgetAt) / cooldown)
      this.#budget = Math.min(this.#o.earlyRefetches, this.#budget + refill)
      this.#budgetAt += refill * cooldown
    }
    if (this.#budget > 0) {
      this.#budget--
      return true
    }
    return false
  }

  async #fetchAndApply(seq: number, signal: AbortSignal): Promise<JwksFetchOutcome> {
    const uri = this.#jwksUri ?? (await this.#discover(signal))
    const headers: Record<string, string> = { accept: 'application/jwk-set+json, application/json' }
    if (this.#etag !== undefined && this.#keyCount > 0) headers['if-none-match'] = this.#etag
    const res = await this.#get(uri, headers, signal)
    const ttl = this.#ttl(maxAgeMs(res.headers.get('cache-control')))
    if (res.status === 304 && this.#keyCount > 0) {
      await res.body?.cancel()
      if (seq <= this.#appliedSeq) return 'not_modified'
      this.#appliedSeq = seq
      this.#markLoaded(ttl)
      this.#c.metrics.jwksFetch('not_modified')
      this.#c.logger.debug({ uri }, 'JWKS not modified')
      return 'not_modified'
    }
    if (res.status !== 200) {
      await res.body?.cancel()
      throw new JwksFetchError('http_status', `the JWKS endpoint answered HTTP ${res.status}`)
    }
    const keys = await importKeySet(await readBody(res, this.#o.maxBytes, 'JWKS'), this.#c.algorithms, this.#c.logger)
    if (seq <= this.#appliedSeq) {
      this.#c.logger.debug({ uri }, 'ignoring a JWKS response older than the one applied')
      return 'updated'
    }
    this.#appliedSeq = seq
    const previous = this.#keys
    this.#keys = keys
    this.#keyCount = keys.size
    this.#etag = res.headers.get('etag') ?? undefined
    this.#markLoaded(ttl)
    this.#c.metrics.jwksFetch('updated')
    const kids = [...keys.keys()]
    const added = kids.filter((k) => !previous.has(k))
    const removed = [...previous.keys()].filter((k) => !keys.has(k))
    if (added.length > 0 || removed.length > 0) {
      this.#c.logger.info({ kids, added, removed }, 'JWKS keys updated')
      this.#c.onKeysChanged({ kids, added, removed })
    }
    return 'updated'
  }

  async #get(uri: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    this.#fetchCount++
    try {
      // Redirects are not followed: the key source is configuration, not something a response may change.
      return await this.#c.fetch(uri, { method: 'GET', headers, signal, redirect: 'manual' })
    } catch (cause) {
      if (signal.aborted) throw new JwksFetchError('timeout', `fetching ${uri} timed out`, { cause })
      throw new JwksFetchError('network', `fetching ${uri} failed`, { cause })
    }
  }

  /** OpenID Connect Discovery 1.0 §4: the document's `issuer` must equal the configured one exactly. */
  async #discover(signal: AbortSignal): Promise<string> {
    const url = `${this.#c.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`
    let res: Response
    try {
      res = await this.#get(url, { accept: 'application/json' }, signal)
    } catch (err) {
      if (err instanceof JwksFetchError && err.reason === 'timeout') throw err
      throw new JwksFetchError('discovery', `fetching ${url} failed`, { cause: err })
    }
    if (res.status !== 200) {
      await res.body?.cancel()
      throw new JwksFetchError('discovery', `the discovery document answered HTTP ${res.status}`)
    }
    let doc: unknown
    try {
      doc = await readBody(res, this.#o.maxBytes, 'discovery')
    } catch (cause) {
      throw new JwksFetchError('discovery', 'the discovery document is invalid', { cause })
    }
    const { issuer, jwks_uri: jwksUri } = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>
    if (issuer !== this.#c.issuer) {
      throw new JwksFetchError('discovery', `the discovery document names issuer ${JSON.stringify(issuer)}, not ${this.#c.issuer}`)
    }
    if (typeof jwksUri !== 'string' || !/^https?:\/\//.test(jwksUri)) {
      throw new JwksFetchError('discovery', 'the discovery document has no http(s) jwks_uri')
    }
    this.#jwksUri = jwksUri
    return jwksUri
  }

  #ttl(maxAge: number | undefined): number {
    const ttl = maxAge ?? this.#o.defaultTtlMs
    return Math.min(Math.max(ttl, this.#o.minTtlMs), this.#o.maxTtlMs)
  }

  #markLoaded(ttl: number): void {
    const now = this.#c.clock()
    this.#loadedAt = now
    this.#refreshAt = now + ttl * REFRESH_AHEAD_RATIO
    this.#staleUntil = now + ttl + this.#o.maxStaleMs
    this.#lastFailed = false
    this.#failures = 0
  }

  #recordFailure(seq: number, err: unknown): JwksFailureReason {
    const reason: JwksFailureReason = err instanceof JwksFetchError ? err.reason : 'network'
    // A newer fetch already succeeded: this older failure says nothing about the present.
    if (seq <= this.#appliedSeq) return reason
    const now = this.#c.clock()
    this.#lastFailed = true
    this.#failures++
    // Without any key the service is not ready: retry within seconds. With keys (stale-if-error), back off further.
    const cap = this.#keyCount > 0 ? Math.max(this.#o.cooldownMs, 1000) : 5000
    this.#retryAt = now + Math.min(1000 * 2 ** (this.#failures - 1), cap)
    this.#c.metrics.jwksFailure(reason)
    let root: unknown = err
    for (let i = 0; i < 5 && root instanceof Error && root.cause instanceof Error; i++) root = root.cause
    const cause = root !== err && root instanceof Error ? root.message : undefined
    this.#c.logger.warn(
      { reason, err: (err as Error).message, cause, failures: this.#failures, haveKeys: this.#keyCount > 0 },
      this.#keyCount > 0 ? 'JWKS refresh failed; cached keys stay in use' : 'JWKS fetch failed; no keys loaded',
    )
    return reason
  }

  /** A background wake-up for the next refresh (or retry); decisions use the injected clock. */
  #schedule(): void {
    if (!this.#o.backgroundRefresh || this.#closed) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    const target = this.#lastFailed ? this.#retryAt : this.#refreshAt
    const delay = Math.min(Math.max(target - this.#c.clock(), 1000), MAX_TIMER_MS)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const now = this.#c.clock()
      if (now >= target) this.#due(now)
      if (this.#inflight === null) this.#schedule()
    }, delay)
    this.#timer.unref()
  }
}
