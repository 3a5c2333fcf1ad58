import type { EnvReader } from './config.js'

/**
 * How long a client may take, in seconds (HTTP_* variables; both services read them the same way).
 * Node's defaults leave a slow client holding a connection and a request slot for minutes
 * (fastify sets no request timeout at all): a few hundred connections sending a header or a body
 * byte by byte would exhaust a service without any load on it.
 */
export interface HttpTimeouts {
  /** HTTP_REQUEST_TIMEOUT: to receive a whole request, headers and body (408 and closed after). */
  readonly requestTimeout: number
  /** HTTP_HEADERS_TIMEOUT: to receive the request line and headers; at most requestTimeout. */
  readonly headersTimeout: number
  /**
   * HTTP_KEEP_ALIVE_TIMEOUT: an idle keep-alive connection is closed after this. Longer than the
   * idle timeout of the load balancer in front (60 s on most), so the balancer, not the service,
   * closes idle connections and never sends a request on one the service is closing.
   */
  readonly keepAliveTimeout: number
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = Object.freeze({ requestTimeout: 30, headersTimeout: 10, keepAliveTimeout: 65 })

/** Reads HTTP_REQUEST_TIMEOUT, HTTP_HEADERS_TIMEOUT, HTTP_KEEP_ALIVE_TIMEOUT (seconds), remembering problems. */
export function readHttpTimeouts(r: EnvReader): HttpTimeouts {
  const d = DEFAULT_HTTP_TIMEOUTS
  const requestTimeout = r.int('HTTP_REQUEST_TIMEOUT', d.requestTimeout, { min: 1, max: 3600 })
  const headersTimeout = r.int('HTTP_HEADERS_TIMEOUT', Math.min(d.headersTimeout, requestTimeout), { min: 1, max: 3600 })
  const keepAliveTimeout = r.int('HTTP_KEEP_ALIVE_TIMEOUT', d.keepAliveTimeout, { min: 1, max: 3600 })
  if (headersTimeout > requestTimeout) {
    r.problem(`HTTP_HEADERS_TIMEOUT must not exceed HTTP_REQUEST_TIMEOUT (${headersTimeout} > ${requestTimeout})`)
  }
  return Object.freeze({ requestTimeout, headersTimeout, keepAliveTimeout })
}

/** The fastify options that apply them (one place for both services). */
export function httpServerOptions(t: HttpTimeouts = DEFAULT_HTTP_TIMEOUTS): {
  requestTimeout: number
  keepAliveTimeout: number
  http: { requestTimeout: number; headersTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number }
} {
  const requestTimeout = t.requestTimeout * 1000
  const headersTimeout = Math.min(t.headersTimeout, t.requestTimeout) * 1000
  const keepAliveTimeout = t.keepAliveTimeout * 1000
  return {
    requestTimeout,
    keepAliveTimeout,
    http: {
      requestTimeout,
      headersTimeout,
      keepAliveTimeout,
      // Node enforces the two timeouts above only when it sweeps its connections (every 30 s by
      // default), so a limit of 10 s would really be up to 40 s. Sweep every second (or faster
      // for sub-second limits): a cut lands within a second of its limit.
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(headersTimeout / 4))),
    },
  }
}
