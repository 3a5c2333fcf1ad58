import { hash, verify } from '@node-rs/argon2'

/**
 * Password hashing with argon2id at OWASP's first recommended parameters
 * (m = 19 MiB, t = 2, p = 1), run off the event loop by the native binding.
 */
const PARAMS = { algorithm: 2 /* Algorithm.Argon2id (a const enum) */, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const

export async function hashPassword(password: string): Promise<string> {
  return await hash(password, PARAMS)
}

/** A hash of nothing anyone knows: verified against for unknown users so timing does not tell. */
let dummy: Promise<string> | undefined
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(`no-such-user-${Math.random()}`)
  return dummy
}

/** Constant-time by construction (argon2 verify compares digests in constant time). Never throws. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password)
  } catch {
    return false
  }
}
