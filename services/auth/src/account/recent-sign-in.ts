import type { LoginSession } from '../signin/sessions.js'

/**
 * What changes how a user signs in (enrolling or removing a second factor, new recovery codes)
 * needs a recent sign-in of this very session, not just a live one: a browser left signed in
 * for hours must not let whoever sits at it add their own passkey. Older than this, the account
 * page asks the user to sign in again (the login form, which returns to the page; the session
 * keeps its id and gets a new `auth_time`).
 */
export const RECENT_SIGN_IN_SECONDS = 5 * 60

/** True when the session's last authentication (`auth_time`) is at most RECENT_SIGN_IN_SECONDS old at `nowMs`. */
export function signedInRecently(session: LoginSession, nowMs: number): boolean {
  return Math.floor(nowMs / 1000) - session.authTime <= RECENT_SIGN_IN_SECONDS
}
