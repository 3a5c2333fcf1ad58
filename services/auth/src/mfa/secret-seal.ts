import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

/**
 * TOTP secrets at rest (and in the account page's pending enrolment): a TOTP secret must be read
 * back to check a code, so it cannot be hashed; it is sealed with AES-256-GCM under a key derived
 * (HKDF-SHA256, RFC 5869, info `gatehouse totp secret`) from each COOKIE_SECRET. The first secret
 * of the list seals; every one is tried to open, so COOKIE_SECRET can be rotated as long as the
 * old value stays in the list while TOTP enrolments sealed under it exist (docs/design.md).
 *
 * A sealed value is `v1.<kid>.<iv>.<ciphertext>.<tag>` (base64url parts): `kid` is a short digest
 * of the key (which secret sealed it, so opening tries one key, not all); the IV is 12 random
 * bytes (NIST SP 800-38D §8.2.2: random IVs are safe far beyond the number of secrets sealed
 * here). The `context` (the user id) is the GCM additional data: a sealed secret copied into
 * another user's record does not open.
 */
const VERSION = 'v1'
const INFO = 'gatehouse totp secret'
const KID_INFO = 'gatehouse totp secret key id'
const IV_BYTES = 12
const TAG_BYTES = 16

interface SealKey {
  kid: string
  key: Buffer
}

function derive(secret: string): SealKey {
  const ikm = Buffer.from(secret, 'utf8')
  const key = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), INFO, 32))
  const kid = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), KID_INFO, 6)).toString('base64url')
  return { kid, key }
}

/** The keys of a COOKIE_SECRET list, derived once per list. */
const cache = new WeakMap<readonly string[], SealKey[]>()
function keysOf(secrets: readonly string[]): SealKey[] {
  let keys = cache.get(secrets)
  if (keys === undefined) {
    if (secrets.length === 0) throw new TypeError('sealing needs at least one COOKIE_SECRET')
    keys = secrets.map(derive)
    cache.set(secrets, keys)
  }
  return keys
}

/** Seals `plain` under the first secret of the list, bound to `context`. */
export function sealSecret(secrets: readonly string[], plain: string, context: string): string {
  const { kid, key } = keysOf(secrets)[0]!
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(context, 'utf8'))
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
  return [VERSION, kid, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.')
}

const PART = /^[A-Za-z0-9_-]*$/

/**
 * What `sealed` holds, if one of the secrets sealed it for this `context`; null otherwise
 * (another version, a secret no longer in the list, another context, tampered with).
 */
export function openSecret(secrets: readonly string[], sealed: string, context: string): string | null {
  const parts = sealed.split('.')
  if (parts.length !== 5 || parts[0] !== VERSION || !parts.every((p) => PART.test(p))) return null
  const [, kid, ivText, bodyText, tagText] = parts as [string, string, string, string, string]
  const iv = Buffer.from(ivText, 'base64url')
  const tag = Buffer.from(tagText, 'base64url')
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null
  for (const k of keysOf(secrets)) {
    if (k.kid !== kid) continue
    try {
      const decipher = createDecipheriv('aes-256-gcm', k.key, iv, { authTagLength: TAG_BYTES })
      decipher.setAAD(Buffer.from(context, 'utf8'))
      decipher.setAuthTag(tag)
      return Buffer.concat([decipher.update(Buffer.from(bodyText, 'base64url')), decipher.final()]).toString('utf8')
    } catch {
      // Another secret may share the key id's 48 bits; go on.
    }
  }
  return null
}
