import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { clearSessionCookie, currentSession, endSession } from '../browser.js'
import type { Client } from '../clients.js'
import type { AuthDeps } from '../deps.js'
import { toOAuthError } from '../http/error-handler.js'
import { singleParams, type Params } from '../http/form.js'
import { messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler } from '../http/page-errors.js'
import { LOGOUT_PARAMS, formBody } from '../http/schemas.js'
import { verifyIdTokenHint } from '../id-token.js'

function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return sendPage(reply, { status: 400, title: 'Sign-out request not valid', body: messagePage('error', message, 'You have not been signed out. Go back to the application and try again.') })
}

/**
 * GET|POST /logout (OIDC RP-Initiated Logout 1.0 §2–3): ends this browser's login session and
 * the session the `id_token_hint` names, revokes every refresh family started from them (each
 * announced on the revocation feed, DESIGN §6), clears the cookie, then redirects to the
 * `post_logout_redirect_uri` only if it is registered for the client identified by the hint or
 * `client_id` (§3: otherwise the OP must not redirect), with `state`; else shows a page.
 */
export async function logoutRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    let params: Params
    try {
      const isForm = request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true
      params = singleParams(request.method === 'GET' ? request.query : isForm ? request.body : {}, 'logout')
    } catch {
      return badRequest(reply, 'The sign-out request repeats a parameter.')
    }

    // §2: the hint must be an ID token we issued; the client is its audience.
    let hint: Awaited<ReturnType<typeof verifyIdTokenHint>> = null
    if (params.id_token_hint !== undefined) {
      hint = await verifyIdTokenHint(deps.keys, deps.config.issuer, params.id_token_hint)
      if (hint === null) return badRequest(reply, 'The sign-out request carries an ID token this server did not issue.')
    }
    let clientId = params.client_id
    if (hint !== null) {
      if (clientId !== undefined && !hint.aud.includes(clientId)) return badRequest(reply, 'client_id does not match the ID token.')
      clientId ??= hint.aud.length === 1 ? hint.aud[0] : undefined
    }
    let client: Client | null = null
    if (clientId !== undefined) {
      client = clientId.length <= 256 ? await deps.clients.get(clientId) : null
      if (client === null) return badRequest(reply, 'The application is unknown.')
    }
    const target = params.post_logout_redirect_uri
    const redirect = target !== undefined && client !== null && client.postLogoutRedirectUris.includes(target) ? target : undefined
    if (target !== undefined && redirect === undefined) {
      request.log.info({ event: 'logout.redirect_refused', client_id: client?.id }, 'post_logout_redirect_uri not registered for the client')
    }

    const ended = new Set<string>()
    let session: Awaited<ReturnType<typeof currentSession>>
    try {
      session = await currentSession(request, deps)
      if (session !== null) ended.add(session.id)
      if (hint?.sid !== undefined) ended.add(hint.sid)
      for (const id of ended) await endSession(deps, request.log, id, 'logout')
    } catch (err) {
      // The session could not be ended: say so rather than pretend (and keep the cookie).
      const oauth = toOAuthError(err)
      request.log[oauth.code === 'temporarily_unavailable' ? 'warn' : 'error']({ err, error: oauth.code }, 'logout failed on the server side')
      return sendPage(reply, {
        status: oauth.code === 'temporarily_unavailable' ? 503 : 500,
        title: 'Try again',
        body: messagePage('error', 'Signing out is not possible right now.', 'You are still signed in. Try again in a moment.'),
      })
    }
    clearSessionCookie(reply, deps.config)
    request.log.info({ event: 'logout', client_id: client?.id, sub: session?.userId ?? hint?.sub, sessions: ended.size }, 'logged out')

    if (redirect !== undefined) {
      const url = new URL(redirect)
      if (params.state !== undefined) url.searchParams.set('state', params.state)
      return reply.code(303).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').header('location', url.toString()).send()
    }
    return sendPage(reply, { status: 200, title: 'Signed out', body: messagePage('info', 'You have been signed out.', 'You can close this window.') })
  }
  const errorHandler = pageErrorHandler({ title: 'Sign-out request not valid', message: 'The sign-out request cannot be processed.', hint: 'You have not been signed out. Go back to the application and try again.' })
  app.get('/logout', { schema: { querystring: LOGOUT_PARAMS }, errorHandler }, handler)
  app.post('/logout', { schema: { body: formBody(LOGOUT_PARAMS) }, errorHandler }, handler)
}
