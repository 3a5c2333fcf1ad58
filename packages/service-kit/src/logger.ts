import type { LoggerOptions } from 'pino'

/**
 * The one redaction list (STYLE: Logs). Every secret-bearing field that can
 * reach a log line, wherever it appears: request headers, parsed bodies that a
 * handler might log, and our own audit fields.
 */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.client_secret',
  '*.clientSecret',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.token',
  '*.code',
  '*.code_verifier',
  '*.client_assertion',
  '*.assertion',
  '*.cookie',
  '*.secret',
  'password',
  'client_secret',
  'refresh_token',
  'access_token',
  'token',
  'code_verifier',
  'client_assertion',
]

/**
 * Query parameters whose values never reach a log line. fastify logs every request's URL, and a
 * client may put a token in the query even where it is not accepted (RFC 6750 §2.3 is not
 * offered), or legitimately send one (`id_token_hint` at /logout); `login_hint` is personal data.
 */
export const REDACT_QUERY_PARAMS: ReadonlySet<string> = new Set([
  'access_token',
  'refresh_token',
  'id_token',
  'id_token_hint',
  'token',
  'code',
  'code_verifier',
  'client_secret',
  'client_assertion',
  'assertion',
  'password',
  'login_hint',
  'logout_hint',
])

/** The URL with the values of secret query parameters replaced (names and the rest kept for debugging). */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      const rawName = eq < 0 ? pair : pair.slice(0, eq)
      let name = rawName
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '))
      } catch {
        // A malformed escape: judge the raw name.
      }
      return eq >= 0 && REDACT_QUERY_PARAMS.has(name.toLowerCase()) ? `${rawName}=[redacted]` : pair
    })
    .join('&')
  return `${url.slice(0, q)}?${query}`
}

interface RequestLike {
  method?: string
  url?: string
  host?: string
  ip?: string
  socket?: { remotePort?: number }
}

/** pino options both services use: JSON, redacted, with the serializers fastify expects. */
export function loggerOptions(level: string, extra: Partial<LoggerOptions> = {}): LoggerOptions {
  return {
    level,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    serializers: {
      // fastify's own request serializer, with the URL's secrets redacted.
      req: (req: RequestLike) => ({
        method: req.method,
        url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
    ...extra,
  }
}
