import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { InvalidRequest, LoginRequired, ServerError } from '@gatehouse/service-kit'
import { parseAuthorizationRequest, type AuthorizationRequest } from '../authorize/authorization-request.js'
import { requiredAcr, signInMeets, type AssuranceClient } from '../mfa/assurance.js'
import type { LoginSession } from '../signin/sessions.js'
import { currentSession, redirectWithCode, redirectWithError, startInteraction } from '../signin/browser.js'
import type { AuthDeps } from '../runtime/deps.js'
import { toOAuthError } from '../http/error-handler.js'
import { cspSource, loginPage, messagePage, sendPage, type LoginPageInput } from '../http/html.js'
import { pageErrorHandler, sendServerFailure } from '../http/page-errors.js'
import { AUTHORIZE_PARAMS, formBody } from '../http/schemas.js'
import { hasRequestUri, parsePushedAuthorization, requirePushed } from '../par/pushed-request.js'
import { offerPasskeyLogin } from '../mfa/passkeys.js'

/** The login form, allowing the form's redirect to the client's validated redirect URI (see PageOptions). */
export function sendLoginPage(reply: FastifyReply, status: number, input: LoginPageInput, redirectUri: string): FastifyReply {
  const target = cspSource(redirectUri)
  return sendPage(reply, { status, title: 'Sign in', body: loginPage(input), formTargets: target === null ? [] : [target], ...(input.passkey === undefined ? {} : { scripts: input.passkey.scripts }) })
}

/**
 * Why the browser's login session cannot answer this request at once (null: it can, SSO):
 *  - `prompt_login`: `prompt=login` always asks again (OIDC Core §3.1.2.1);
 *  - `max_age`: the authentication is older than `max_age` seconds (`max_age=0` always asks);
 *  - `acr`: the session's amr does not meet what the client requires or asks for (requiredAcr:
 *    `require_mfa`, `acr_values`), so the user must step up.
 */
export function ssoRefusal(session: LoginSession, req: AuthorizationRequest, client: AssuranceClient, nowSeconds: number): 'prompt_login' | 'max_age' | 'acr' | null {
  if (req.prompt.includes('login')) return 'prompt_login'
  if (req.maxAge !== undefined && (req.maxAge === 0 || nowSeconds - session.authTime > req.maxAge)) return 'max_age'
  if (!signInMeets(session.amr, requiredAcr(client, req))) return 'acr'
  return null
}

/**
 * GET|POST /authorize (RFC 6749 §4.1.1, OIDC Core §3.1.2; POST as OIDC Core §3.1.2.1 requires):
 * validate, then either answer at once from the login session (SSO, when ssoRefusal finds
 * nothing against it) or show the login form.
 */
export async function authorizeRoute(app: FastifyInstance, { deps }: { deps: AuthDeps }): Promise<void> {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const isForm = request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true
    // A POSTed request is a form (OIDC Core §3.1.2.1); anything else carries no parameters we read.
    const raw = request.method === 'GET' ? request.query : isForm ? request.body : {}
    let parsed: Awaited<ReturnType<typeof parseAuthorizationRequest>>
    try {
      // RFC 9126 §4: a pushed request (only its parameters count), else the URL's own, which
      // REQUIRE_PAR or the client's metadata may refuse.
      parsed = hasRequestUri(raw)
        ? await parsePushedAuthorization(raw, deps)
        : requirePushed(await parseAuthorizationRequest(raw, deps.clients), deps.config.requirePar)
    } catch (err) {
      // The client could not be looked up (store down): nothing is validated, so nothing is redirected.
      return sendServerFailure(request, reply, err, {
        log: 'authorization failed',
        message: 'Signing in is not possible right now.',
        hint: 'Go back to the application and try again in a moment.',
      })
    }
    if (parsed.kind === 'page') {
      // RFC 6749 §4.1.2.1: never redirect to an unverified URI; tell the user instead.
      request.log.info({ event: 'authorize.rejected', error: parsed.error.code, detail: parsed.error.detail ?? parsed.error.description }, 'authorization request rejected')
      return sendPage(reply, {
        status: 400,
        title: 'Sign-in request not valid',
        body: messagePage('error', `The application sent a sign-in request that cannot be processed: ${parsed.error.description}.`, 'Go back to the application and try again.'),
      })
    }
    if (parsed.kind === 'redirect') {
      request.log.info({ event: 'authorize.rejected', client_id: parsed.client.id, error: parsed.error.code, detail: parsed.error.description }, 'authorization request rejected')
      return redirectWithError(reply, deps, parsed.redirectUri, parsed.state, parsed.error, 302)
    }

    const { client, request: req } = parsed
    try {
      let session = await currentSession(request, deps)
      if (session !== null) {
        const user = await deps.users.findById(session.userId)
        if (user === null || user.disabled) session = null
      }
      const sso = session === null ? 'none' : ssoRefusal(session, req, client, Math.floor(deps.clock() / 1000))
      if (session !== null && sso === null) {
        request.log.info({ event: 'authorize.sso', client_id: client.id, sub: session.userId, session_id: session.id }, 'answered from the login session')
        return await redirectWithCode(reply, deps, req, session, 302)
      }
      if (session !== null) request.log.info({ event: 'authorize.reauthenticate', client_id: client.id, sub: session.userId, session_id: session.id, reason: sso }, 'the login session does not answer this request')
      // prompt=none: no page may be shown (OIDC Core §3.1.2.6). A session too old or too weak
      // needs the user to authenticate again: login_required as well (docs/oidc.md).
      if (req.prompt.includes('none')) {
        const why = sso === 'acr' ? 'the user must sign in again with a stronger method' : sso === 'max_age' ? 'the user must sign in again (max_age)' : 'the user must sign in'
        return redirectWithError(reply, deps, req.redirectUri, req.state, new LoginRequired(why), 302)
      }
      const interaction = startInteraction(reply, deps, req)
      if (interaction === null) return redirectWithError(reply, deps, req.redirectUri, req.state, new InvalidRequest('the authorization request is too large'), 302)
      return sendLoginPage(reply, 200, { clientName: client.name ?? client.id, interaction: interaction.id, csrf: interaction.csrf, username: req.loginHint, passkey: await offerPasskeyLogin(reply, deps, interaction.id) }, req.redirectUri)
    } catch (err) {
      // The redirect URI is validated, so even a failure goes back to the client (server_error or
      // temporarily_unavailable, RFC 6749 §4.1.2.1), with the cause only in the log.
      const oauth = toOAuthError(err)
      const sent = oauth.statusCode >= 500 && oauth.code !== 'temporarily_unavailable' ? new ServerError('internal server error') : oauth
      request.log[oauth.statusCode >= 500 ? 'error' : 'info']({ err, error: sent.code }, 'authorization failed')
      return redirectWithError(reply, deps, req.redirectUri, req.state, sent, 302)
    }
  }
  const errorHandler = pageErrorHandler({
    title: 'Sign-in request not valid',
    message: 'The application sent a sign-in request that cannot be processed.',
    hint: 'Go back to the application and try again.',
  })
  app.get('/authorize', { schema: { querystring: AUTHORIZE_PARAMS }, errorHandler }, handler)
  app.post('/authorize', { schema: { body: formBody(AUTHORIZE_PARAMS) }, errorHandler }, handler)
}
