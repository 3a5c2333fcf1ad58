import type { FastifyReply, FastifyRequest } from 'fastify'
import { toOAuthError } from './error-handler.js'
import { messagePage, sendPage } from './html.js'

export interface PageErrorCopy {
  /** The page's title for a request that cannot be processed. */
  title: string
  /** What went wrong, for a malformed request. */
  message: string
  /** What the user can do. */
  hint: string
}

/**
 * The error handler of a browser endpoint (/authorize, /login, /logout): what fastify rejects
 * before the handler runs (schema, content type, body size) is answered as a page with the
 * security headers of every page, never as JSON or a stack trace, and never as a redirect (the
 * request was not validated, so neither is its redirect URI: RFC 6749 §4.1.2.1).
 */
export function pageErrorHandler(copy: PageErrorCopy) {
  return (error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const oauth = toOAuthError(error)
    if (oauth.statusCode >= 500) {
      return sendServerFailure(request, reply, error, {
        log: 'browser request failed on the server side',
        message: 'This is not possible right now.',
        hint: 'Go back to the application and try again in a moment.',
      })
    }
    request.log.info({ error: oauth.code, detail: oauth.detail, status: oauth.statusCode }, 'browser request rejected')
    const message = oauth.statusCode === 413 ? 'The form is too large.' : oauth.statusCode === 415 ? 'The request is not a form.' : copy.message
    return sendPage(reply, { status: oauth.statusCode, title: copy.title, body: messagePage('error', message, copy.hint) })
  }
}

/**
 * A browser endpoint that failed on the server side (a store down, a bug): logged, as a warning
 * when the store is unavailable, and answered 503 or 500 with a page, never a stack trace.
 */
export function sendServerFailure(request: FastifyRequest, reply: FastifyReply, err: unknown, copy: { log: string; message: string; hint: string }): FastifyReply {
  const oauth = toOAuthError(err)
  const unavailable = oauth.code === 'temporarily_unavailable'
  request.log[unavailable ? 'warn' : 'error']({ err, error: oauth.code }, copy.log)
  return sendPage(reply, { status: unavailable ? 503 : 500, title: 'Try again', body: messagePage('error', copy.message, copy.hint) })
}
