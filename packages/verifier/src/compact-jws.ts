/**
 * Strict reading of a compact JWS (RFC 7515 §7.1) for the access-token rulebook: only as much
 * parsing as the checks need, with jose's own decoding rules where the result must equal jose's.
 */

/** The 6-bit value of each base64url character (RFC 4648 §5), -1 for anything else. */
const B64URL_VALUES: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i
  return table
})()

/**
 * Whether `token[start, end)` is canonical unpadded base64url (RFC 4648 §3.5, RFC 7515 §2): not
 * of a length no encoding has (4n + 1), and no bits set past the last whole byte. A decoder that
 * ignores those bits (jose's, Node's) reads several strings as one value; accepting only the
 * canonical one leaves a signed token exactly one spelling. The characters are checked elsewhere.
 */
function canonicalSegment(token: string, start: number, end: number): boolean {
  const rest = (end - start) % 4
  if (rest === 0) return true
  if (rest === 1) return false
  const value = B64URL_VALUES[token.charCodeAt(end - 1)] ?? -1
  return value >= 0 && (value & (rest === 2 ? 0x0f : 0x03)) === 0
}

/** Where the two dots of a compact JWS are: `[dot1, dot2]`. */
export type DotPositions = readonly [number, number]

const DOT = 0x2e

/**
 * The dots of a compact JWS (RFC 7515 §7.1) whose three segments are non-empty, canonical,
 * unpadded base64url; undefined for anything else: another character (whitespace, `=`, `+`, `/`,
 * non-ASCII), a fourth segment, an empty one, spare bits set. One pass over the characters.
 */
export function compactDots(token: string): DotPositions | undefined {
  let dot1 = -1
  let dot2 = -1
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i)
    if (c === DOT) {
      if (dot1 < 0) dot1 = i
      else if (dot2 < 0) dot2 = i
      else return undefined
    } else if (c >= 128 || (B64URL_VALUES[c] as number) < 0) {
      return undefined
    }
  }
  if (dot1 <= 0 || dot2 <= dot1 + 1 || dot2 === token.length - 1) return undefined
  if (!canonicalSegment(token, 0, dot1) || !canonicalSegment(token, dot1 + 1, dot2) || !canonicalSegment(token, dot2 + 1, token.length)) return undefined
  return [dot1, dot2]
}

/** jose's decoder of JOSE headers and claims: UTF-8, fatal on a bad sequence, a leading BOM dropped. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The JSON object a base64url segment encodes, decoded as jose decodes it (strict UTF-8, then
 * JSON.parse), or undefined when it is not valid UTF-8, not JSON, or not a JSON object (an
 * array, a string, a number, `null`). The segment must already be canonical.
 */
export function jsonObjectSegment(token: string, start: number, end: number): Record<string, unknown> | undefined {
  let value: unknown
  try {
    value = JSON.parse(STRICT_UTF8.decode(Buffer.from(token.slice(start, end), 'base64url')))
  } catch {
    return undefined
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/**
 * jose's comparison of `typ` values (RFC 7515 §4.1.9): case-insensitive, `application/` implied
 * when there is no slash, so `at+jwt`, `AT+JWT` and `application/at+jwt` are one media type.
 */
export function normalizeTyp(value: string): string {
  const lower = value.toLowerCase()
  return value.includes('/') ? lower : `application/${lower}`
}
