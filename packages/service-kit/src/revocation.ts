/**
 * The revocation feed (DESIGN §6), shared by the publisher (auth) and the
 * subscribers (verifier). The auth service PUBLISHes `{sid, exp}` on the
 * channel and also ZADDs `sid` with score `exp` to the recent set (trimmed by
 * score), so a subscriber that reconnects can catch up on what it missed.
 */
export const REVOCATION_CHANNEL = 'gatehouse:revocations'
export const RECENT_REVOCATIONS_KEY = 'gatehouse:revocations:recent'

export interface RevocationEvent {
  /** The `sid` claim of the access tokens to reject. */
  sid: string
  /** Seconds since the epoch after which no access token of this sid can be valid anyway. */
  exp: number
}

export function encodeRevocation(event: RevocationEvent): string {
  return JSON.stringify({ sid: event.sid, exp: event.exp })
}

/** Parses a channel message; null for anything malformed (never throws). */
export function decodeRevocation(message: string): RevocationEvent | null {
  try {
    const v: unknown = JSON.parse(message)
    if (typeof v !== 'object' || v === null) return null
    const { sid, exp } = v as Record<string, unknown>
    if (typeof sid !== 'string' || sid.length === 0 || sid.length > 200) return null
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return null
    return { sid, exp }
  } catch {
    return null
  }
}
