import { hash } from '@node-rs/argon2'
import { CURRENT_ARGON2ID, verifyPasswordHash } from './password-hashes.js'
import type { User } from './users.js'

/**
 * Password hashing with argon2id at OWASP's first recommended parameters
 * (m = 19 MiB, t = 2, p = 1), run off the event loop by the native binding.
 */
const PARAMS = { algorithm: 2 /* Algorithm.Argon2id (a const enum) */, ...CURRENT_ARGON2ID } as const

export async function hashPassword(password: string): Promise<string> {
  return await hash(password, PARAMS)
}

/** A hash of nothing anyone knows: verified against for unknown users so timing does not tell. */
let dummy: Promise<string> | undefined
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(`no-such-user-${Math.random()}`)
  return dummy
}

/**
 * Checks a password against a stored hash: our argon2id, or an imported bcrypt, argon2i, PBKDF2 or
 * scrypt hash (password-hashes.ts, cost-bounded). Comparisons are constant-time. Never throws.
 */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  return await verifyPasswordHash(phc, password)
}

/** The password policy of every way a password is set (`users add|set-password`, the account page). */
export function passwordProblem(password: string): string | null {
  // NIST SP 800-63B §5.1.1.2: at least 8 characters; a generous upper bound keeps the KDF input sane.
  if (password.length < 8) return 'a password has at least 8 characters'
  if (password.length > 1024) return 'a password has at most 1024 characters'
  return null
}

/**
 * Sets a user's password after the policy: the one way a password is replaced (the CLI's
 * `users set-password`, the account page). What the change implies for the user's sessions is the
 * caller's (logout/end-sessions.ts). Returns the policy's problem, or the user (null when gone).
 */
export async function replacePassword(users: { setPassword(id: string, passwordHash: string): Promise<User | null> }, userId: string, password: string): Promise<{ problem: string } | { user: User | null }> {
  const problem = passwordProblem(password)
  if (problem !== null) return { problem }
  return { user: await users.setPassword(userId, await hashPassword(password)) }
}
