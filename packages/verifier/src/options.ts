// Over 300 lines: every option of the verifier (JWKS, cache, revocation, DPoP) is declared,
// documented and validated here, once, so that a bad one fails up front naming itself.
import type { RedisOptions } from 'ioredis'
import type { Registry } from 'prom-client'
import { DPOP_ALGORITHMS, type DpopReplayCache } from './dpop-proof.js'

/** Milliseconds since the epoch. Injected so that time-dependent rules can be tested without sleeping. */
export type Clock = () => number

/** The subset of the WHATWG `fetch` the verifier uses (the global one by default). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>

/** A pino-compatible logger (fastify's `app.log` fits). */
export interface VerifierLogger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** Asymmetric JWS algorithms the verifier can be told to accept. HMAC and `none` are not among them. */
export const SUPPORTED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const
export type VerifierAlgorithm = (typeof SUPPORTED_ALGORITHMS)[number]

export interface JwksOptions {
  /** Lower bound for the cache lifetime taken from `Cache-Control: max-age` (default 30 s). */
  minTtlMs?: number
  /** Upper bound for the cache lifetime (default 1 h), so a rotation is picked up in bounded time. */
  maxTtlMs?: number
  /** Lifetime when the JWKS response has no usable `max-age` (default 5 min). */
  defaultTtlMs?: number
  /** An unknown `kid` refetches at most once per cool-down (default 30 s). */
  cooldownMs?: number
  /** Extra refetches allowed inside a cool-down, refilled one per cool-down (default 3). */
  earlyRefetches?: number
  /** Timeout of one discovery or JWKS request (default 5 s). */
  timeoutMs?: number
  /** How long past expiry cached keys keep verifying while the issuer is unreachable (default 24 h). */
  maxStaleMs?: number
  /** Largest accepted discovery or JWKS response body (default 512 KiB). */
  maxBytes?: number
  /** Wake up in the background to refresh ahead of expiry (default true). */
  backgroundRefresh?: boolean
}

/** DPoP at the resource server (RFC 9449 §7): `Authorization: DPoP <token>` with a `DPoP` proof. */
export interface DpopOptions {
  /** Refuse bearer tokens everywhere: only DPoP-bound tokens with a proof (default false; routes can ask for it alone). */
  required?: boolean
  /**
   * The base URL clients reach the service at (`https://api.example.com`, or with the path prefix
   * a proxy strips), for the proof's `htu`: it is this plus the request's path. Unset: built from
   * the request's protocol and Host (fastify's `request.protocol` and `request.host`, which follow
   * `trustProxy`). Set it behind a proxy, and in production: a Host header is the client's to choose.
   */
  publicUrl?: string
  /** How old a proof's `iat` may be, seconds (default 60); `clockTolerance` applies on top, both ways. */
  maxAgeSeconds?: number
  /** Accepted proof algorithms, a subset of DPOP_ALGORITHMS (default all of them); advertised in `algs`. */
  algorithms?: readonly string[]
  /**
   * Where used proofs are remembered (RFC 9449 §11.1): default a `MemoryDpopReplayCache` of this
   * process, so a proof replayed at another replica within its lifetime is not caught; plug a
   * shared one (e.g. Redis SET NX) to close that.
   */
  replayCache?: DpopReplayCache
  /**
   * Bound of the default in-memory replay cache (default 500000 proofs, about 60 MB when full).
   * It must exceed the proofs one process accepts within a proof's life (`maxAgeSeconds` plus
   * twice `clockTolerance`: 120 s by default, so about 4,000 DPoP requests/s); when it is full
   * of live proofs, new ones are refused (`invalid_dpop_proof`) rather than a replay let through.
   */
  replayMaxEntries?: number
  /**
   * Server nonces (RFC 9449 §9): with a secret (≥ 16 bytes, the same on every replica), every
   * proof must carry a recent `DPoP-Nonce`; otherwise 401 `use_dpop_nonce` with the nonce to use.
   */
  nonceSecret?: Buffer | string
  /** How long one nonce window lasts (default 5 min; a nonce is accepted for one to two windows). */
  nonceWindowMs?: number
}

export interface ResolvedDpopOptions {
  required: boolean
  /** Without a trailing slash. */
  publicUrl: string | undefined
  maxAgeSeconds: number
  algorithms: readonly string[]
  replayCache: DpopReplayCache | undefined
  replayMaxEntries: number
  nonceSecret: Buffer | undefined
  nonceWindowMs: number
}

export interface VerifierOptions {
  /** The trusted issuer: `iss` must equal it exactly; the JWKS is found through its discovery document. */
  issuer: string
  /** `aud` must contain this value. */
  audience: string
  /** Skip discovery and fetch the JWKS from here (e.g. an in-cluster address). */
  jwksUri?: string
  /** Accepted `alg` values (default `['RS256']`). */
  algorithms?: readonly VerifierAlgorithm[]
  /** Seconds of clock skew accepted for `exp`, `nbf` and `iat` (default 30). */
  clockTolerance?: number
  clock?: Clock
  /** Tokens longer than this many characters are refused before parsing (default 8192). */
  maxTokenLength?: number
  fetch?: FetchLike
  jwks?: JwksOptions
  /** The verified-token cache; `false` turns it off (default `{ maxEntries: 10000 }`). */
  cache?: { maxEntries?: number } | false
  /** Subscribe to the revocation feed (DESIGN §6): a `redis://` URL or ioredis options. */
  redis?: string | RedisOptions
  /** Bound of the revoked-`sid` deny-list (default 100000). */
  revocation?: { maxEntries?: number }
  /** prom-client registry to register the verifier's metrics in (default: a private one). */
  registry?: Registry
  /** Metric name prefix (default `gatehouse_verifier_`). */
  metricsPrefix?: string
  logger?: VerifierLogger
  /** DPoP (RFC 9449) is always accepted; these options tune it. */
  dpop?: DpopOptions
}

export interface ResolvedJwksOptions {
  minTtlMs: number
  maxTtlMs: number
  defaultTtlMs: number
  cooldownMs: number
  earlyRefetches: number
  timeoutMs: number
  maxStaleMs: number
  maxBytes: number
  backgroundRefresh: boolean
}

export interface ResolvedOptions {
  issuer: string
  audience: string
  jwksUri: string | undefined
  algorithms: readonly VerifierAlgorithm[]
  clockTolerance: number
  clock: Clock
  maxTokenLength: number
  fetch: FetchLike
  jwks: ResolvedJwksOptions
  cacheMaxEntries: number
  redis: string | RedisOptions | undefined
  revocationMaxEntries: number
  registry: Registry | undefined
  metricsPrefix: string
  logger: VerifierLogger
  dpop: ResolvedDpopOptions
}

const noop = (): void => {}
export const silentLogger: VerifierLogger = { debug: noop, info: noop, warn: noop, error: noop }

/** Thrown for a bad option; the message names the option (as jose does). */
export class VerifierOptionError extends TypeError {
  constructor(option: string, requirement: string) {
    super(`verifier option "${option}" ${requirement}`)
    this.name = 'VerifierOptionError'
  }
}

function httpUrl(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw new VerifierOptionError(option, 'must be a non-empty string')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new VerifierOptionError(option, `must be a URL, got ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new VerifierOptionError(option, `must be an http(s) URL, got ${JSON.stringify(value)}`)
  }
  return value
}

function count(option: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new VerifierOptionError(option, `must be a finite number >= ${min}, got ${String(value)}`)
  }
  return value
}

function resolveDpop(d: DpopOptions | undefined): ResolvedDpopOptions {
  if (d !== undefined && (typeof d !== 'object' || d === null)) throw new VerifierOptionError('dpop', 'must be an object')
  const o = d ?? {}
  let publicUrl: string | undefined
  if (o.publicUrl !== undefined) {
    const url = new URL(httpUrl('dpop.publicUrl', o.publicUrl))
    if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
      throw new VerifierOptionError('dpop.publicUrl', 'must have no query, fragment or credentials')
    }
    publicUrl = `${url.origin}${url.pathname}`.replace(/\/+$/, '')
  }
  const algorithms = o.algorithms ?? DPOP_ALGORITHMS
  if (!Array.isArray(algorithms) || algorithms.length === 0) throw new VerifierOptionError('dpop.algorithms', 'must be a non-empty array')
  for (const alg of algorithms) {
    if (!(DPOP_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new VerifierOptionError('dpop.algorithms', `may only contain ${DPOP_ALGORITHMS.join(', ')}; got ${JSON.stringify(alg)}`)
    }
  }
  if (o.replayCache !== undefined && typeof o.replayCache?.claim !== 'function') throw new VerifierOptionError('dpop.replayCache', 'must have a claim(key, expiresAtMs) method')
  let nonceSecret: Buffer | undefined
  if (o.nonceSecret !== undefined) {
    nonceSecret = typeof o.nonceSecret === 'string' ? Buffer.from(o.nonceSecret, 'utf8') : Buffer.isBuffer(o.nonceSecret) ? Buffer.from(o.nonceSecret) : undefined
    if (nonceSecret === undefined || nonceSecret.length < 16) throw new VerifierOptionError('dpop.nonceSecret', 'must be at least 16 bytes')
  }
  return {
    required: o.required === true,
    publicUrl,
    maxAgeSeconds: Math.floor(count('dpop.maxAgeSeconds', o.maxAgeSeconds, 60, 1)),
    algorithms: [...algorithms],
    replayCache: o.replayCache,
    replayMaxEntries: Math.floor(count('dpop.replayMaxEntries', o.replayMaxEntries, 500_000, 1)),
    nonceSecret,
    nonceWindowMs: count('dpop.nonceWindowMs', o.nonceWindowMs, 5 * 60_000, 1000),
  }
}

/** Validates every option up front and fills in defaults. */
export function resolveOptions(options: VerifierOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new VerifierOptionError('options', 'must be an object')
  const issuer = httpUrl('issuer', options.issuer)
  if (typeof options.audience !== 'string' || options.audience.length === 0) {
    throw new VerifierOptionError('audience', 'must be a non-empty string')
  }
  const jwksUri = options.jwksUri === undefined ? undefined : httpUrl('jwksUri', options.jwksUri)

  const algorithms = options.algorithms ?? ['RS256']
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new VerifierOptionError('algorithms', 'must be a non-empty array')
  }
  for (const alg of algorithms) {
    if (!(SUPPORTED_ALGORITHMS as readonly string[]).includes(alg)) {
      // `none` and HMAC are refused here: a verifier holding public keys must never accept them.
      throw new VerifierOptionError('algorithms', `may only contain ${SUPPORTED_ALGORITHMS.join(', ')}; got ${JSON.stringify(alg)}`)
    }
  }

  const j = options.jwks ?? {}
  const minTtlMs = count('jwks.minTtlMs', j.minTtlMs, 30_000)
  const maxTtlMs = count('jwks.maxTtlMs', j.maxTtlMs, 3_600_000, 1)
  if (maxTtlMs < minTtlMs) throw new VerifierOptionError('jwks.maxTtlMs', 'must not be below jwks.minTtlMs')
  const jwks: ResolvedJwksOptions = {
    minTtlMs,
    maxTtlMs,
    defaultTtlMs: Math.min(Math.max(count('jwks.defaultTtlMs', j.defaultTtlMs, 300_000, 1), minTtlMs), maxTtlMs),
    cooldownMs: count('jwks.cooldownMs', j.cooldownMs, 30_000),
    earlyRefetches: Math.floor(count('jwks.earlyRefetches', j.earlyRefetches, 3)),
    timeoutMs: count('jwks.timeoutMs', j.timeoutMs, 5_000, 1),
    maxStaleMs: count('jwks.maxStaleMs', j.maxStaleMs, 86_400_000),
    maxBytes: count('jwks.maxBytes', j.maxBytes, 512 * 1024, 1),
    backgroundRefresh: j.backgroundRefresh ?? true,
  }

  let cacheMaxEntries = 10_000
  if (options.cache === false) cacheMaxEntries = 0
  else if (options.cache !== undefined) cacheMaxEntries = Math.floor(count('cache.maxEntries', options.cache.maxEntries, 10_000))

  if (options.redis !== undefined && typeof options.redis !== 'string' && (typeof options.redis !== 'object' || options.redis === null)) {
    throw new VerifierOptionError('redis', 'must be a redis:// URL or an ioredis options object')
  }
  if (typeof options.redis === 'string' && !/^rediss?:\/\//.test(options.redis)) {
    throw new VerifierOptionError('redis', 'must be a redis:// or rediss:// URL')
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') throw new VerifierOptionError('clock', 'must be a function')
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new VerifierOptionError('fetch', 'must be a function')

  return {
    issuer,
    audience: options.audience,
    jwksUri,
    algorithms: [...algorithms],
    clockTolerance: count('clockTolerance', options.clockTolerance, 30),
    clock: options.clock ?? Date.now,
    maxTokenLength: Math.floor(count('maxTokenLength', options.maxTokenLength, 8192, 16)),
    fetch: options.fetch ?? ((input, init) => fetch(input, init)),
    jwks,
    cacheMaxEntries,
    redis: options.redis,
    revocationMaxEntries: Math.floor(count('revocation.maxEntries', options.revocation?.maxEntries, 100_000, 1)),
    registry: options.registry,
    metricsPrefix: options.metricsPrefix ?? 'gatehouse_verifier_',
    logger: options.logger ?? silentLogger,
    dpop: resolveDpop(options.dpop),
  }
}
