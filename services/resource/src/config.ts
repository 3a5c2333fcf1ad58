import { EnvReader, LOG_LEVELS, readHttpTimeouts, readOverloadLimits, type Env, type OverloadLimits, type HttpTimeouts, type LogLevel } from '@gatehouse/service-kit'

/** The resource service's configuration (DESIGN §4). Only this module reads the environment. */
export interface ResourceConfig {
  readonly host: string
  readonly port: number
  /** The trusted issuer; the JWKS is found through its discovery document. */
  readonly issuer: string
  /** Tokens must name it in `aud`. */
  readonly audience: string
  /** Overrides discovery (e.g. an in-cluster address). */
  readonly jwksUri: string | undefined
  /** Unset: no revocation feed, access tokens live until they expire. */
  readonly redisUrl: string | undefined
  /** Seconds of clock skew accepted. */
  readonly clockTolerance: number
  /**
   * The base URL clients reach the service at, for DPoP proofs' `htu` (RFC 9449 §4.3). Unset: the
   * request's own scheme and Host header.
   */
  readonly publicUrl: string | undefined
  /** Turns on DPoP server nonces (RFC 9449 §9); the same on every replica. Unset: no nonces. */
  readonly dpopNonceSecret: string | undefined
  readonly logLevel: LogLevel
  /** HTTP_REQUEST_TIMEOUT, HTTP_HEADERS_TIMEOUT, HTTP_KEEP_ALIVE_TIMEOUT (service-kit; defaults when absent). */
  readonly http?: HttpTimeouts
  /** OVERLOAD_* (service-kit overload.ts): when to shed load with 503 + Retry-After; defaults when absent. */
  readonly overload?: OverloadLimits
  /** REPORTS_URL and the EXCHANGE_CLIENT_*: `GET /reports/me` calls the reports service for the user (token exchange); unset = no such route. */
  readonly reports?: ReportsConfig | undefined
}

/** The downstream reports service and the client this service exchanges users' tokens as (RFC 8693). */
export interface ReportsConfig {
  readonly url: string
  /** The audience to exchange for (REPORTS_AUDIENCE, default `api://reports`). */
  readonly audience: string
  readonly clientId: string
  readonly clientSecret: string
}

/** Reads and validates the environment; throws one ConfigError naming every bad variable. */
export function loadConfig(env: Env): ResourceConfig {
  const r = new EnvReader(env)
  const host = r.string('HOST', '127.0.0.1')
  const port = r.port('PORT', 4001)
  const issuer = r.url('ISSUER', 'http://127.0.0.1:4000') ?? 'http://127.0.0.1:4000'
  const audience = r.string('AUDIENCE', 'api://resource')
  if (/\s/.test(audience)) r.problem(`AUDIENCE must not contain whitespace, got ${JSON.stringify(audience)}`)
  const jwksUri = r.url('JWKS_URI', undefined)
  const redisUrl = r.url('REDIS_URL', undefined, ['redis:', 'rediss:'])
  const clockTolerance = r.int('CLOCK_TOLERANCE', 30, { min: 0, max: 300 })
  const publicUrl = r.url('PUBLIC_URL', undefined)
  if (publicUrl !== undefined && /[?#]/.test(publicUrl)) r.problem('PUBLIC_URL must have no query or fragment')
  const dpopNonceSecret = r.optional('DPOP_NONCE_SECRET')
  if (dpopNonceSecret !== undefined && Buffer.byteLength(dpopNonceSecret) < 16) r.problem('DPOP_NONCE_SECRET must be at least 16 bytes')
  const logLevel = r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS)
  const http = readHttpTimeouts(r)
  const overload = readOverloadLimits(r, env.NODE_ENV === 'production')
  const reports = readReports(r)
  r.done()
  return Object.freeze({ host, port, issuer, audience, jwksUri, redisUrl, clockTolerance, publicUrl, dpopNonceSecret, logLevel, http, overload, ...(reports === undefined ? {} : { reports }) })
}

/** The reports call (token exchange): all of it or none of it. */
function readReports(r: EnvReader): ReportsConfig | undefined {
  const url = r.url('REPORTS_URL', undefined)
  const reportsAudience = r.string('REPORTS_AUDIENCE', 'api://reports')
  const clientId = r.optional('EXCHANGE_CLIENT_ID')
  const clientSecret = r.optional('EXCHANGE_CLIENT_SECRET')
  if (url === undefined) {
    if (clientId !== undefined || clientSecret !== undefined) r.problem('EXCHANGE_CLIENT_ID and EXCHANGE_CLIENT_SECRET are used only with REPORTS_URL')
    return undefined
  }
  if (clientId === undefined || clientSecret === undefined) {
    r.problem('REPORTS_URL needs EXCHANGE_CLIENT_ID and EXCHANGE_CLIENT_SECRET (the client this service exchanges tokens as)')
    return undefined
  }
  if (/\s/.test(reportsAudience)) r.problem(`REPORTS_AUDIENCE must not contain whitespace, got ${JSON.stringify(reportsAudience)}`)
  return Object.freeze({ url: url.replace(/\/+$/, ''), audience: reportsAudience, clientId, clientSecret })
}
