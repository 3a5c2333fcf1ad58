import { hash } from '@node-rs/argon2'
import { CURRENT_ARGON2ID, verifyPasswordHash } from './password-hashes.js'

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
