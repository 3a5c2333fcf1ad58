import { InvalidRequest, NotFound, OAuthError, ServerError, isOAuthError } from '@gatehouse/service-kit'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** The public description of each fastify 4xx; anything else is "the request is malformed". */
const FRAMEWORK_DESCRIPTIONS: Readonly<Record<string, string>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'the request body is too large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'the request body must be application/json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'the request body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'the request body is not valid JSON',
}

/**
 * Every error as an OAuthError: OAuth errors as they are; a schema failure as invalid_request
 * with one fixed description (the validator's own message names schema internals and echoes
 * input, so it goes to the log only); fastify's own 4xx as invalid_request; anything
 * unexpected as a generic server_error.
 */
function toOAuthError(err: FastifyError): OAuthError {
  if (isOAuthError(err)) return err
  if (err.validation !== undefined) return new InvalidRequest('the request does not match the schema of this endpoint', { detail: err.message })
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    return new OAuthError('invalid_request', status, FRAMEWORK_DESCRIPTIONS[err.code] ?? 'the request is malformed', { detail: err.code })
  }
  return new ServerError('internal server error', { cause: err })
}

/** The service's one error writer: the RFC 6749 §5.2 `{error, error_description}` body, `detail` never sent. */
export function sendError(reply: FastifyReply, err: OAuthError): FastifyReply {
  return reply.code(err.statusCode).send(err.toJSON())
}

/**
 * The service's one error handler. Authentication failures never get here: the verifier plugin
 * answers those itself (RFC 6750 challenges included) with the same body shape.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const oauth = toOAuthError(err)
    if (oauth.statusCode >= 500) request.log.error({ err }, 'unexpected error')
    else request.log.info({ error: oauth.code, reason: oauth.detail, status: oauth.statusCode }, 'request refused')
    return sendError(reply, oauth)
  })

  app.setNotFoundHandler(sendNotFound)
}

/** 404 as JSON; also used by the prefixes that guard their own unknown paths. */
export function sendNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = (request.url.split('?')[0] ?? '').slice(0, 200)
  return sendError(reply, new NotFound(`no route for ${request.method} ${path}`))
}
