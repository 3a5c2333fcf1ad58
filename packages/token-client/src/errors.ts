/** RFC 6749 §5.2 codes (and the two §4.1.2.1 server codes, and RFC 9449's two) a token endpoint may answer with. */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'access_denied',
  'server_error',
  'temporarily_unavailable',
  // RFC 9449 §12.2.
  'invalid_dpop_proof',
  'use_dpop_nonce',
] as const
export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number]

/**
 * A closed set: the server's OAuth code when it sent a known one, or what
 * went wrong on the way: `network_error` (no answer, or a timeout),
 * `invalid_response` (an answer that is not a token response),
 * `discovery_failed` (the issuer's metadata could not be used).
 */
export type TokenClientErrorCode = OAuthErrorCode | 'network_error' | 'invalid_response' | 'discovery_failed'

export interface TokenClientErrorOptions {
  status?: number
  description?: string
  /** The server's `error` value as sent, when it is not one of the known codes. */
  serverError?: string
  retryable?: boolean
  /** From the server's Retry-After, when it sent one. */
  retryAfterMs?: number
  attempts?: number
  cause?: unknown
}

export class TokenClientError extends Error {
  readonly code: TokenClientErrorCode
  /** HTTP status of the token endpoint's answer, when there was one. */
  readonly status: number | undefined
  /** The server's `error_description`, when it sent one. */
  readonly description: string | undefined
  readonly serverError: string | undefined
  /** Network errors, timeouts, 5xx and 429 are retried; other answers are final. */
  readonly retryable: boolean
  readonly retryAfterMs: number | undefined
  /** Attempts made before giving up. */
  readonly attempts: number

  constructor(code: TokenClientErrorCode, message: string, options: TokenClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TokenClientError'
    this.code = code
    this.status = options.status
    this.description = options.description
    this.serverError = options.serverError
    this.retryable = options.retryable ?? false
    this.retryAfterMs = options.retryAfterMs
    this.attempts = options.attempts ?? 1
  }

  /** The same error, recording how many attempts were made. */
  withAttempts(attempts: number): TokenClientError {
    return new TokenClientError(this.code, this.message, {
      status: this.status,
      description: this.description,
      serverError: this.serverError,
      retryable: this.retryable,
      retryAfterMs: this.retryAfterMs,
      attempts,
      cause: this.cause,
    })
  }
}

export function isOAuthErrorCode(value: unknown): value is OAuthErrorCode {
  return typeof value === 'string' && (OAUTH_ERROR_CODES as readonly string[]).includes(value)
}
