import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { OAuthError, InvalidRequest, NotFound, ServerError, TemporarilyUnavailable } from '@gatehouse/service-kit'
import { InvalidBasicClient } from '../directory/client-auth.js'
import { StoreUnavailable } from '../store/types.js'
import { bearerChallenge } from './bearer.js'

/**
 * The one serializer of errors (STYLE: Errors). OAuth errors become RFC 6749
 * §5.2 JSON; framework errors (bad JSON, wrong content type, oversize body,
 * schema) become their standard equivalents; anything else is a generic
 * server_error whose detail is only logged.
 */
export function toOAuthError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err
  if (err instanceof StoreUnavailable) return new TemporarilyUnavailable('the token store is unavailable, try again', { detail: err.message })
  const fe = err as Partial<FastifyError>
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new OAuthError('invalid_request', 413, 'the request body is too large')
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new OAuthError('invalid_request', 415, 'unsupported content type')
    if (fe.validation) return new InvalidRequest(validationDescription(fe.validation), { detail: fe.message })
    return new OAuthError('invalid_request', fe.statusCode === 404 ? 400 : fe.statusCode, 'the request is malformed', { detail: fe.code })
  }
  return new ServerError('internal server error', { cause: err })
}

/**
 * What a schema failure (http/schemas.ts) says to the client: which parameter, and why, in our own
 * words. A parameter name comes from the request, so only a short, plain one is repeated.
 */
function validationDescription(validation: NonNullable<FastifyError['validation']>): string {
  const first = validation[0]
  if (first === undefined) return 'the request is malformed'
  const path = first.instancePath.split('/')[1] ?? ''
  // A parameter is a string or a repeated one (schemas.ts: anyOf), so one failure reports a
  // keyword per branch: look at all of them for that parameter.
  const keywords = new Set(validation.filter((v) => (v.instancePath.split('/')[1] ?? '') === path).map((v) => v.keyword))
  const shown = /^[\w.-]{1,64}$/.test(path) ? `parameter ${path}` : 'a parameter'
  if (first.keyword === 'maxProperties') return 'the request has too many parameters'
  if (first.keyword === 'propertyNames' || keywords.has('propertyNames')) return 'a parameter name is too long'
  if (path === '') return first.keyword === 'type' ? 'the request must be a set of parameters' : 'the request is malformed'
  if (keywords.has('maxItems')) return `${shown} is repeated`
  if (keywords.has('maxLength')) return `${shown} is too long`
  return `${shown} is malformed`
}

export function sendOAuthError(reply: FastifyReply, err: OAuthError): FastifyReply {
  if (err instanceof InvalidBasicClient) reply.header('www-authenticate', 'Basic realm="gatehouse", charset="UTF-8"')
  const bearer = bearerChallenge(err)
  if (bearer !== undefined) reply.header('www-authenticate', bearer)
  return reply.code(err.statusCode).header('cache-control', 'no-store').send(err.toJSON())
}

export function installErrorHandler(app: FastifyInstance, onStoreError?: () => void): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const oauth = toOAuthError(error)
    if (oauth.statusCode >= 500) {
      if (oauth.code === 'temporarily_unavailable') {
        onStoreError?.()
        request.log.warn({ err: error, error: oauth.code }, 'store unavailable')
      } else request.log.error({ err: error }, 'unexpected error')
    } else {
      request.log.info({ error: oauth.code, detail: oauth.detail }, 'request rejected')
    }
    return sendOAuthError(reply, oauth)
  })
  app.setNotFoundHandler((request, reply) => {
    // The path comes from the request: bounded, and only ever inside the JSON body.
    const path = (request.url.split('?')[0] ?? '').slice(0, 200)
    return sendOAuthError(reply, new NotFound(`no route ${request.method} ${path}`))
  })
}
