import { isOAuthError } from '@gatehouse/service-kit'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/**
 * The service's one error serializer: `{error, error_description}` for
 * everything, OAuth errors as they are, fastify's own 4xx as
 * invalid_request, anything unexpected as a generic server_error (logged
 * with its stack, never sent). Authentication failures never get here: the
 * verifier plugin answers those itself (RFC 6750 challenges included).
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isOAuthError(err)) {
      request.log.info({ error: err.code, reason: err.detail }, 'request refused')
      return reply.code(err.statusCode).send(err.toJSON())
    }
    const status = err.statusCode ?? 500
    if (err.validation !== undefined) {
      return reply.code(400).send({ error: 'invalid_request', error_description: `invalid request: ${err.message}` })
    }
    if (status >= 400 && status < 500) {
      let description: string
      switch (err.code) {
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
          description = 'the request body is too large'
          break
        case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
          description = 'the request body must be application/json'
          break
        case 'FST_ERR_CTP_INVALID_JSON_BODY':
        case 'FST_ERR_CTP_EMPTY_JSON_BODY':
          description = 'the request body is not valid JSON'
          break
        default:
          description = 'the request is malformed'
      }
      request.log.info({ code: err.code, status }, 'bad request')
      return reply.code(status).send({ error: 'invalid_request', error_description: description })
    }
    request.log.error({ err }, 'unexpected error')
    return reply.code(500).send({ error: 'server_error', error_description: 'internal server error' })
  })

  app.setNotFoundHandler(sendNotFound)
}

/** 404 as JSON; also used by the prefixes that guard their own unknown paths. */
export function sendNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = (request.url.split('?')[0] ?? '').slice(0, 200)
  return reply.code(404).send({ error: 'not_found', error_description: `no route for ${request.method} ${path}` })
}
