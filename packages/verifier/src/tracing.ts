import { SpanKind, SpanStatusCode, trace, type Span, type SpanOptions } from '@opentelemetry/api'

/**
 * The verifier's spans (issue 19), through @opentelemetry/api only: the service that embeds the
 * verifier decides whether a tracer provider is registered. Without one (tracing off) every call
 * here goes to the API's no-op tracer, and `span.isRecording()` is false, so no attribute is
 * computed. No span ever carries a token: only its header's `kid` and `alg`, the outcome and the
 * rejection reason.
 */
export const tracer = trace.getTracer('@gatehouse/verifier')

/** Options of `gatehouse.verify`: internal work inside the request's span. */
export const VERIFY_SPAN: SpanOptions = { kind: SpanKind.INTERNAL }

/** The longest `kid` or `alg` recorded (both come from the token, i.e. from the caller). */
const MAX_HEADER_VALUE = 64

/**
 * Records a verification's outcome on its span: `gatehouse.verify.outcome` (`valid` or
 * `invalid`), the rejection's `gatehouse.verify.reason` (an InvalidTokenReason or the error code)
 * and, when the token's header decodes, `jwt.kid` and `jwt.alg`. Only when the span records.
 */
export function recordVerification(span: Span, token: string, error: { code: string; detail?: string | undefined } | undefined): void {
  if (!span.isRecording()) return
  const header = headerOf(token)
  if (header.kid !== undefined) span.setAttribute('jwt.kid', header.kid)
  if (header.alg !== undefined) span.setAttribute('jwt.alg', header.alg)
  if (error === undefined) {
    span.setAttribute('gatehouse.verify.outcome', 'valid')
    return
  }
  span.setAttribute('gatehouse.verify.outcome', 'invalid')
  span.setAttribute('gatehouse.verify.reason', error.detail ?? error.code)
  // A refused token is the verifier working, not failing; a key that cannot be had is an error.
  if (error.code === 'temporarily_unavailable') span.setStatus({ code: SpanStatusCode.ERROR, message: error.code })
}

/** The `kid` and `alg` of a compact JWS's protected header, when they are short strings; never throws. */
function headerOf(token: string): { kid?: string; alg?: string } {
  if (typeof token !== 'string') return {}
  const dot = token.indexOf('.')
  if (dot <= 0 || dot > 1024) return {}
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8')) as unknown
    if (header === null || typeof header !== 'object') return {}
    const { kid, alg } = header as Record<string, unknown>
    return {
      ...(typeof kid === 'string' && kid.length <= MAX_HEADER_VALUE ? { kid } : {}),
      ...(typeof alg === 'string' && alg.length <= MAX_HEADER_VALUE ? { alg } : {}),
    }
  } catch {
    return {}
  }
}
