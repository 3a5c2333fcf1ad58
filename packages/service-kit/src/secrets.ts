/**
 * The secret names of log lines and trace attributes, in a module of its own (no fastify, no pino) so
 * that the tracing entry (`tracing.ts`) can use them before the service's modules load.
 */

/**
 * The one redaction list (STYLE: Logs): every secret-bearing field that can reach a log line,
 * wherever it appears. Headers never do: the `req` and `res` serializers of logger.ts write none (and
 * fastify logs requests and replies through them). Fields named like a secret are censored by one
 * pass over a line's keys (`redactSecrets`, pino's `formatters.log`), at the top of the line and one
 * level down (a handler logging `{ body }` or `{ headers }`), copying only a line that holds one.
 * (pino's path redaction with `*.name` wildcards did the same at three times the cost of a line.)
 */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([
  'password',
  'client_secret',
  'clientSecret',
  'access_token',
  'refresh_token',
  'id_token',
  // RFC 8693 §2.1: the tokens of a token exchange.
  'subject_token',
  'actor_token',
  'token',
  'code_verifier',
  // RFC 8628: the polling device's secret, and the code a user types (what a guesser wants).
  'device_code',
  'user_code',
  'client_assertion',
  'assertion',
  'cookie',
  'secret',
  'authorization',
  // A DPoP proof (RFC 9449): single-use where it is checked, but replayable elsewhere within its life.
  'dpop',
])

/**
 * Query parameters whose values never reach a log line. fastify logs every request's URL, and a
 * client may put a token in the query even where it is not accepted (RFC 6750 §2.3 is not
 * offered), or legitimately send one (`id_token_hint` at /logout); `login_hint` is personal data.
 * A pushed request's `request_uri` (RFC 9126) and a device's `user_code` (RFC 8628
 * `verification_uri_complete`) stand in for a pending authorization until they are used.
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
  'request_uri',
  'user_code',
  'device_code',
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
