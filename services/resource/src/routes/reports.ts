import { OAuthError, TemporarilyUnavailable } from '@gatehouse/service-kit'
import { TokenClientError, type TokenClient } from '@gatehouse/token-client'
import { authErrorResponse, extractAccessToken } from '@gatehouse/verifier'
import type { FastifyInstance } from 'fastify'
import type { ReportsConfig } from '../config.js'
import { sendError } from '../error-handler.js'

export interface ReportsRouteOptions {
  reports: ReportsConfig
  /** The client this service exchanges users' tokens as (EXCHANGE_CLIENT_ID). */
  tokens: TokenClient
  /** The realm of this service's challenges (its audience). */
  realm: string
}

const UPSTREAM_TIMEOUT_MS = 10_000

/**
 * `GET /reports/me` (only when REPORTS_URL is set): a call to another service on the user's
 * behalf (DESIGN §10.4, RFC 8693). The caller's token is for this service, not for the reports
 * service, and this service's own client_credentials token would forget the user; so the user's
 * token is exchanged (token-client, cached per user token) for one to the reports audience, which
 * names the user as `sub` and this service as the actor (`act.sub`), and the reports service's
 * `/me` answer is returned as it is.
 *
 * A subject the auth service refuses (`invalid_request`: revoked, expired) is the caller's
 * token being invalid: 401 `invalid_token` with its challenge. The auth service or the reports
 * service unreachable: 503; any other refusal (this service's client is not allowed the grant or
 * the audience, the reports service refuses the exchanged token): 502, the reason only logged.
 */
export async function reportsRoutes(app: FastifyInstance, { reports, tokens, realm }: ReportsRouteOptions): Promise<void> {
  app.get('/reports/me', { config: { auth: { kind: 'user' } } }, async (request, reply) => {
    // The verifier admitted exactly this header's token (RFC 6750 §2.1, or RFC 9449 §7.1 with DPoP).
    const subjectToken = extractAccessToken(request.headers.authorization)!.token
    let accessToken: string
    try {
      ;({ accessToken } = await tokens.exchange({ subjectToken, audience: reports.audience }))
    } catch (err) {
      if (!(err instanceof TokenClientError)) throw err
      request.log.info({ event: 'token_exchange.failed', code: err.code, status: err.status, attempts: err.attempts }, 'token exchange failed')
      if (err.code === 'invalid_request') {
        const res = authErrorResponse(new OAuthError('invalid_token', 401, 'the access token is invalid, expired or revoked', { detail: 'exchange refused' }), realm)
        return reply.code(res.statusCode).headers(res.headers).send(res.body)
      }
      if (err.retryable) return sendError(reply, new TemporarilyUnavailable('the authorization server cannot be reached'))
      return sendError(reply, new OAuthError('server_error', 502, 'the reports service cannot be called for this user', { detail: err.code }))
    }
    let res: Response
    try {
      res = await fetch(`${reports.url}/me`, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' }, redirect: 'manual', signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS) })
    } catch (err) {
      request.log.warn({ event: 'reports.unreachable', reason: (err as Error).name }, 'the reports service cannot be reached')
      return sendError(reply, new TemporarilyUnavailable('the reports service cannot be reached'))
    }
    const body: unknown = await res.json().catch(() => undefined)
    if (res.status !== 200 || typeof body !== 'object' || body === null) {
      request.log.info({ event: 'reports.refused', status: res.status, error: (body as { error?: unknown } | undefined)?.error }, 'the reports service refused the exchanged token')
      return sendError(reply, new OAuthError('server_error', 502, 'the reports service refused the request', { detail: `status ${res.status}` }))
    }
    return body
  })
}
