import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { clearSessionCookie, currentSession, endSession } from '../signin/browser.js'
import type { Client } from '../directory/clients.js'
import type { AuthDeps } from '../runtime/deps.js'
import { singleParams, type Params } from '../http/form.js'
import { messagePage, sendPage } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { LOGOUT_PARAMS, formBody } from '../http/schemas.js'
import { verifyIdTokenHint } from '../tokens/id-token.js'
import { clearLogoutConfirmation, readLogoutConfirmation, sendLogoutConfirmation, startLogoutConfirmation } from '../logout/confirmation.js'
import type { LoginSession } from '../signin/sessions.js'
import { audit } from '../audit/trail.js'

function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return sendPage(reply, { status: 400, title: 'Sign-out request not valid', body: messagePage('error', message, 'You have not been signed out. Go back to the application and try again.') })
}

function unavailable(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  // The session could not be ended: say so rather than pretend (and keep the cookie).
  return sendServerFailure(request, reply, err, {
    log: 'logout failed on the server side',
    message: 'Signing out is not possible right now.',
    hint: 'You are still signed in. Try again in a moment.',
  })
}

/** After logout: the validated post_logout_redirect_uri with `state` (§3), else a page. */
function finish(reply: FastifyReply, redirect: string | undefined, state: string | undefined): FastifyReply {
  if (redirect !== undefined) {
    const url = new URL(redirect)
    if (state !== undefined) url.searchParams.set('state', state)
    return reply.code(303).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').header('location', url.toString()).send()
  }
  return sendPage(reply, { status: 200, title: 'Signed out', body: messagePage('info', 'You have been signed out.', 'You can close this window.') })
}

interface After {
  redirect?: string
  state?: string
  clientId?: string
  clientName?: string
}

/**
 * GET|POST /logout (OIDC RP-Initiated Logout 1.0 §2–3). Only this browser's login session can
 * end here, never the one an ID token names (DESIGN §10.1): it ends at once when the
 * `id_token_hint` is an ID token of this session (its `sid` and `sub`); otherwise (no hint, or
 * one of another session) the user is asked first, on a confirmation page whose form POSTs back
 * here with a CSRF token (logout/confirmation.ts). Ending it revokes its families, announces them
 * (DESIGN §6) and tells its clients (logout/end-sessions.ts). Then the redirect goes to the
 * `post_logout_redirect_uri` only if it is registered for the client identified by the hint or
 * `client_id` (§3: otherwise the OP must not redirect), with `state`; else a page.
 */
export async function logoutRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const end = async (request: FastifyRequest, reply: FastifyReply, session: LoginSession, after: After, how: 'hint' | 'confirmed'): Promise<FastifyReply> => {
    try {
      await endSession(deps, request.log, session.id, 'logout')
    } catch (err) {
      return unavailable(request, reply, err)
    }
    clearSessionCookie(reply, deps.config)
    audit(request.log, deps.audit, { event: 'logout', client_id: after.clientId, sub: session.userId, session_id: session.id, how, ip: request.ip }, 'logged out')
    return finish(reply, after.redirect, after.state)
  }

  const ask = (request: FastifyRequest, reply: FastifyReply, session: LoginSession, after: After): FastifyReply => {
    const started = startLogoutConfirmation(reply, deps, { sid: session.id, redirect: after.redirect, state: after.state, clientId: after.clientId })
    if (started === null) return badRequest(reply, 'The sign-out request is too large.')
    request.log.info({ event: 'logout.confirmation_shown', client_id: after.clientId, session_id: session.id }, 'logout needs the user to confirm')
    return sendLogoutConfirmation(reply, { ...started, clientName: after.clientName, redirect: after.redirect })
  }

  /** The confirmation form's POST. */
  const confirmed = async (request: FastifyRequest, reply: FastifyReply, params: Params): Promise<FastifyReply> => {
    const check = readLogoutConfirmation(request, deps, params.confirm, params.csrf)
    if (!check.ok) {
      request.log.info({ event: 'logout.rejected', reason: check.reason, ip: request.ip }, 'logout confirmation rejected')
      return sendPage(reply, {
        status: check.reason === 'csrf' ? 403 : 400,
        title: 'Sign-out expired',
        body: messagePage('error', 'This sign-out form has expired or is not valid.', 'You have not been signed out. Go back to the application and try again.'),
      })
    }
    const pending = check.value
    clearLogoutConfirmation(reply, deps.config, params.confirm!)
    const after: After = { redirect: pending.redirect, state: pending.state, clientId: pending.clientId }
    if (params.action === 'cancel') {
      request.log.info({ event: 'logout.cancelled', client_id: pending.clientId, session_id: pending.sid }, 'the user stayed signed in')
      return sendPage(reply, { status: 200, title: 'Still signed in', body: messagePage('info', 'You are still signed in.', 'You can close this window.') })
    }
    let session: LoginSession | null
    try {
      session = await currentSession(request, deps)
    } catch (err) {
      return unavailable(request, reply, err)
    }
    // Nothing left to end: the session ended meanwhile (in another tab, by an admin).
    if (session === null) return finish(reply, after.redirect, after.state)
    // Another session now (signed in again meanwhile): the user was not asked about this one.
    if (session.id !== pending.sid) return ask(request, reply, session, after)
    return await end(request, reply, session, after, 'confirmed')
  }

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    let params: Params
    try {
      const isForm = request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true
      params = singleParams(request.method === 'GET' ? request.query : isForm ? request.body : {}, 'logout')
    } catch {
      return badRequest(reply, 'The sign-out request repeats a parameter.')
    }
    if (request.method === 'POST' && params.confirm !== undefined) return await confirmed(request, reply, params)

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
    try {
      if (clientId !== undefined) {
        client = clientId.length <= 256 ? await deps.clients.get(clientId) : null
        if (client === null) return badRequest(reply, 'The application is unknown.')
      }
    } catch (err) {
      return unavailable(request, reply, err)
    }
    const target = params.post_logout_redirect_uri
    const redirect = target !== undefined && client !== null && client.postLogoutRedirectUris.includes(target) ? target : undefined
    if (target !== undefined && redirect === undefined) {
      request.log.info({ event: 'logout.redirect_refused', client_id: client?.id }, 'post_logout_redirect_uri not registered for the client')
    }
    const after: After = { redirect, state: params.state, clientId: client?.id, clientName: client?.name ?? client?.id }

    let session: LoginSession | null
    try {
      session = await currentSession(request, deps)
    } catch (err) {
      return unavailable(request, reply, err)
    }
    if (session === null) {
      // Not signed in here: nothing to end (an ID token alone never ends a session, DESIGN §10.1).
      clearSessionCookie(reply, deps.config)
      request.log.info({ event: 'logout', client_id: after.clientId, sub: hint?.sub, how: 'no_session' }, 'logout without a session')
      return finish(reply, after.redirect, after.state)
    }
    // §2: an ID token of this very session (and user) is the RP's proof; anything else, ask.
    if (hint !== null && hint.sid === session.id && hint.sub === session.userId) return await end(request, reply, session, after, 'hint')
    return ask(request, reply, session, after)
  }
  const errorHandler = pageErrorHandler({ title: 'Sign-out request not valid', message: 'The sign-out request cannot be processed.', hint: 'You have not been signed out. Go back to the application and try again.' })
  app.get('/logout', { schema: { querystring: LOGOUT_PARAMS }, errorHandler }, handler)
  app.post('/logout', { schema: { body: formBody(LOGOUT_PARAMS) }, errorHandler }, handler)
}
