import type { FastifyReply, FastifyRequest } from 'fastify'
import { clearInteraction, currentSession, endSession, redirectWithCode, setSessionCookie, type Interaction } from './browser.js'
import type { LoginSession } from './sessions.js'
import type { AuthDeps } from '../runtime/deps.js'
import type { User } from '../directory/users.js'
import type { Client } from '../directory/clients.js'
import type { AuthorizationRequest } from '../authorize/authorization-request.js'
import { DEVICE_PAGE_NAME, devicePageUrl } from '../device/verification-page.js'
import { ACCOUNT_PAGE_NAME, accountPageUrl } from '../account/account-page.js'

/**
 * What every way of signing in ends with (the password form, its second step, a passkey alone):
 * where the pending login leads, and the new login session.
 */

/** Where a pending login leads: the client it signs in to (if any), the name the form shows, and what follows a sign-in. */
export interface LoginTarget {
  clientId?: string
  name: string
  /** The URL the answer to the form's POST redirects to (the page's CSP form-action must allow it). */
  redirect: string
  /** A client's sign-in: the client and its request, for what the sign-in must reach (mfa/assurance.ts nextSignInStep). */
  assurance?: { client: Client; request: AuthorizationRequest }
  finish(reply: FastifyReply, session: LoginSession): Promise<FastifyReply>
}

/**
 * The pending authorization request, checked against the client directory again (null when the
 * client changed meanwhile), or the device verification page or account page to return to.
 */
export async function loginTarget(deps: AuthDeps, pending: Interaction): Promise<LoginTarget | null> {
  if ('request' in pending) {
    const req = pending.request
    const client = await deps.clients.get(req.clientId)
    if (client === null || !client.grantTypes.has('authorization_code') || !client.redirectUris.includes(req.redirectUri)) return null
    return { clientId: client.id, name: client.name ?? client.id, redirect: req.redirectUri, assurance: { client, request: req }, finish: async (reply, session) => await redirectWithCode(reply, deps, req, session, 303) }
  }
  if ('account' in pending) {
    const redirect = accountPageUrl(deps.config)
    return { name: ACCOUNT_PAGE_NAME, redirect, finish: async (reply) => reply.code(303).header('cache-control', 'no-store').header('location', redirect).send() }
  }
  const redirect = devicePageUrl(deps.config, pending.device.userCode)
  // 303: the browser follows with a GET of the page, where the user submits the code themself.
  return { name: DEVICE_PAGE_NAME, redirect, finish: async (reply) => reply.code(303).header('cache-control', 'no-store').header('location', redirect).send() }
}

export interface CompleteSignIn {
  user: User
  /** How the user authenticated (RFC 8176 values, mfa/assurance.ts). */
  amr: readonly string[]
  target: LoginTarget
  /** The pending login's id: its cookie is cleared. */
  interactionId: string
}

/**
 * Starts the login session of a user who has just authenticated and answers the pending login.
 * A fresh secret on every login (session fixation); the same public id when the same user signs
 * in again, so logout still reaches the families started before. True once the answer is sent;
 * false (nothing started, nothing sent) when the user changed meanwhile (disabled, deleted,
 * password changed): the caller shows its form again with the generic failure. (A boolean: a
 * reply is thenable, so it is never the value of an async function.)
 */
export async function completeSignIn(request: FastifyRequest, reply: FastifyReply, deps: AuthDeps, c: CompleteSignIn): Promise<boolean> {
  const { user, target } = c
  const previous = await currentSession(request, deps)
  let reuseId: string | undefined
  if (previous !== null && previous.userId === user.id) reuseId = previous.id
  else if (previous !== null) await endSession(deps, request.log, previous.id, 'replaced')
  const { session, token } = await deps.sessions.start({
    userId: user.id,
    authTime: Math.floor(deps.clock() / 1000),
    amr: c.amr,
    reuseId,
    // What `gatehouse sessions list` shows to tell the user's devices apart.
    userAgent: request.headers['user-agent'],
    address: request.ip,
  })
  // A password change or disable that ran after the check ended the user's sessions before this
  // one existed: look again (uncached, by name), so no session outlives it.
  const now = await deps.users.findByUsername(user.username)
  if (now === null || now.id !== user.id || now.disabled || now.passwordHash !== user.passwordHash) {
    await endSession(deps, request.log, session.id, now === null ? 'user_deleted' : now.disabled ? 'user_disabled' : 'password_change')
    request.log.warn({ event: 'login.superseded', client_id: target.clientId, sub: user.id, ip: request.ip }, 'the user changed during the login: no session')
    return false
  }
  setSessionCookie(reply, deps.config, token)
  clearInteraction(reply, deps.config, c.interactionId)
  // 303: the browser follows with a GET, never re-posting a form (RFC 9110 §15.4.4).
  await target.finish(reply, session)
  return true
}
