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

/** pino options both services use: JSON, redacted, with the serializers fastify expects. */
export function loggerOptions(level: string, extra: Partial<LoggerOptions> = {}): LoggerOptions {
  return {
    level,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    ...extra,
  }
}
