import type { LoginSession, LoginSessionStore } from '../signin/sessions.js'
import type { Family, FamilyStore, RevokeReason } from '../families/types.js'
import type { BackchannelLogout } from './backchannel.js'
import { audit, type AuditTrail } from '../audit/trail.js'

/**
 * The one way a login session ends (DESIGN §10.1), whoever ends it: /logout, a login as another
 * user in the same browser, and the admin verbs (password change, disable, delete, `sessions
 * revoke`, sign out everywhere) through the service or the CLI.
 *
 * Ending a session removes it (its cookie resolves to nothing, so /authorize shows the login
 * page), revokes the refresh families started from it, announces them on the revocation feed
 * (DESIGN §6: every user access token's `sid` is a family id, so resource services drop them),
 * and tells the clients that received tokens in it (OIDC Back-Channel Logout 1.0).
 */
export interface SessionEndDeps {
  sessions: LoginSessionStore
  families: FamilyStore
  backchannel: BackchannelLogout
  /** Publishes the revoked families (DESIGN §6) and writes their audit lines. */
  announce(families: readonly Family[], reason: RevokeReason): Promise<void>
  log: { info(obj: Record<string, unknown>, msg?: string): void; error(obj: Record<string, unknown>, msg?: string): void }
  /** Each ended session is recorded in the audit trail too, with the operator who ended it, if one did. */
  audit: AuditTrail
  actor?: string
}

/** `factor_added`: the user enrolled a second factor; sessions signed in without it end (a stolen password's included). */
export type SessionEndReason = 'logout' | 'replaced' | 'password_change' | 'factor_added' | 'user_disabled' | 'user_deleted' | 'admin'

const FAMILY_REASON: Record<SessionEndReason, RevokeReason> = {
  logout: 'logout',
  replaced: 'logout',
  password_change: 'password_change',
  // The user's credentials changed, as with a new password.
  factor_added: 'password_change',
  user_disabled: 'user_disabled',
  user_deleted: 'admin',
  admin: 'admin',
}

export interface SessionsEnded {
  sessions: LoginSession[]
  families: Family[]
}

/** Ends the named login sessions and what was issued in them; ids that are not live are skipped. */
export async function endSessions(d: SessionEndDeps, sessionIds: Iterable<string>, reason: SessionEndReason): Promise<SessionsEnded> {
  const out: SessionsEnded = { sessions: [], families: [] }
  for (const id of new Set(sessionIds)) {
    // Its families are revoked before the session ends: should that fail, the session is still
    // there for the retry to end (were it gone, /logout would find nothing to end and its families
    // would live on). Then again after: a code exchange that started a family meanwhile looks at
    // the session once more after it (grants/authorization-code.ts), so none escapes both.
    const families = await d.families.revokeBySession(id, FAMILY_REASON[reason])
    await d.announce(families, FAMILY_REASON[reason])
    const ended = await d.sessions.end(id)
    const late = await d.families.revokeBySession(id, FAMILY_REASON[reason])
    await d.announce(late, FAMILY_REASON[reason])
    families.push(...late)
    out.families.push(...families)
    if (ended === null) continue
    out.sessions.push(ended)
    await reportEnded(d, ended, families.length, reason)
  }
  return out
}

/**
 * Ends every login session of a user and revokes every family of the user (those of the password
 * grant included, which belong to no login session).
 */
export async function endUserSessions(d: SessionEndDeps, userId: string, reason: SessionEndReason): Promise<SessionsEnded> {
  const sessions = await d.sessions.endByUser(userId)
  const families = await d.families.revokeByUser(userId, FAMILY_REASON[reason])
  await d.announce(families, FAMILY_REASON[reason])
  for (const s of sessions) await reportEnded(d, s, families.filter((f) => f.sessionId === s.id).length, reason)
  return { sessions, families }
}

async function reportEnded(d: SessionEndDeps, s: LoginSession, families: number, reason: SessionEndReason): Promise<void> {
  audit(d.log, d.audit, { event: 'session.ended', session_id: s.id, sub: s.userId, reason, families, clients: s.clientIds, ...(d.actor ? { actor: d.actor } : {}) }, 'login session ended')
  try {
    await d.backchannel.sessionEnded({ sid: s.id, sub: s.userId, clientIds: s.clientIds })
  } catch (err) {
    // The session is ended and its tokens revoked either way; only the clients' notice is lost.
    d.log.error({ err, event: 'backchannel.not_queued', session_id: s.id, sub: s.userId }, 'back-channel logout could not be queued')
  }
}

/**
 * Ends every login session of a user but `keep` (the one that changed the password) and revokes
 * every family of the user not started from it (those of the password grant included).
 */
export async function endOtherUserSessions(d: SessionEndDeps, userId: string, keep: string, reason: SessionEndReason): Promise<SessionsEnded> {
  const others = (await d.sessions.listByUser(userId)).filter((s) => s.id !== keep).map((s) => s.id)
  const out = await endSessions(d, others, reason)
  const loose: Family[] = []
  for (const f of await d.families.listByUser(userId)) {
    if (f.revoked || f.sessionId === keep) continue
    const revoked = await d.families.revoke(f.id, FAMILY_REASON[reason])
    if (revoked !== null) loose.push(revoked)
  }
  await d.announce(loose, FAMILY_REASON[reason])
  out.families.push(...loose)
  return out
}
