import { createHash, randomBytes } from 'node:crypto'

/**
 * Recovery codes (DESIGN §10.5): single-use codes the user writes down for the day the
 * authenticator app is lost. A set is RECOVERY_CODE_COUNT codes of 10 characters of Crockford's
 * base32 alphabet (no i, l, o or u; shown in lower case as `xxxxx-xxxxx`), 5 random bits each,
 * 50 bits a code: far beyond guessing within the attempt limits, so a plain SHA-256 digest is
 * enough to keep them (no KDF, as for the store's other high-entropy secrets). Only the digests
 * are kept (mfa/factors.ts RecoveryCodesFactor); the codes are shown once.
 *
 * What the user types is normalised before its digest is taken, the same way when a set is made
 * and when a code is used: case-insensitive, dashes and spaces ignored, and the letters Crockford
 * reads as digits (o as 0; i and l as 1) read that way.
 */
export const RECOVERY_CODE_COUNT = 10
export const RECOVERY_CODE_LENGTH = 10
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

/** A new set: the codes to show (`xxxxx-xxxxx`) and the digests to keep, in the same order. */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): { codes: string[]; hashes: string[] } {
  const codes: string[] = []
  for (let i = 0; i < count; i++) {
    // 32 symbols: each byte's low 5 bits are uniform.
    const raw = [...randomBytes(RECOVERY_CODE_LENGTH)].map((b) => ALPHABET[b & 31]!).join('')
    codes.push(`${raw.slice(0, 5)}-${raw.slice(5)}`)
  }
  return { codes, hashes: codes.map((c) => recoveryCodeHash(c)!) }
}

/** The canonical form of a typed code, or null when it cannot be one (refused without a lookup). */
export function normaliseRecoveryCode(typed: string): string | null {
  if (typed.length > 64) return null
  const code = typed.toLowerCase().replace(/[\s-]+/g, '').replace(/o/g, '0').replace(/[il]/g, '1')
  if (code.length !== RECOVERY_CODE_LENGTH) return null
  for (const c of code) if (!ALPHABET.includes(c)) return null
  return code
}

/** The digest kept for a code (base64url SHA-256 of its canonical form); null when it cannot be a code. */
export function recoveryCodeHash(typed: string): string | null {
  const code = normaliseRecoveryCode(typed)
  return code === null ? null : createHash('sha256').update(code).digest('base64url')
}
