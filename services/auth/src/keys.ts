import { readFile } from 'node:fs/promises'
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { calculateJwkThumbprint, type JWK } from 'jose'

/**
 * Signing keys (DESIGN §7). A key set holds every key that is published at
 * /jwks.json; exactly one is active for signing. Published JWKs are built from
 * an allow-list of public members, so a private part can never leak.
 */
export interface SigningKey {
  kid: string
  alg: 'RS256'
  privateKey: KeyObject
  publicJwk: PublicJwk
}

export interface PublicJwk {
  kty: 'RSA'
  kid: string
  use: 'sig'
  alg: 'RS256'
  n: string
  e: string
}

export interface KeySetSnapshot {
  active: SigningKey
  keys: readonly SigningKey[]
  /** The JWKS document and its strong ETag, computed once per key set. */
  jwks: { keys: PublicJwk[] }
  jwksBody: string
  etag: string
}

export class KeySetError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'KeySetError'
  }
}

const PUBLIC_MEMBERS = ['kty', 'n', 'e'] as const

async function toSigningKey(jwk: JWK, index: number): Promise<SigningKey> {
  if (jwk.kty !== 'RSA') throw new KeySetError(`key ${index}: kty must be RSA`)
  if (jwk.alg !== undefined && jwk.alg !== 'RS256') throw new KeySetError(`key ${index}: alg must be RS256`)
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new KeySetError(`key ${index}: use must be sig`)
  if (typeof jwk.d !== 'string') throw new KeySetError(`key ${index}: not a private key (no "d")`)
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' })
  } catch {
    throw new KeySetError(`key ${index}: not a valid RSA private JWK`)
  }
  const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < 2048) throw new KeySetError(`key ${index}: RSA keys must be at least 2048 bits`)
  const pub = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>
  const members = Object.fromEntries(PUBLIC_MEMBERS.map((m) => [m, pub[m]])) as { kty: 'RSA'; n: string; e: string }
  // RFC 7638 thumbprint unless the key file names one (DESIGN §7).
  const kid = typeof jwk.kid === 'string' && jwk.kid.length > 0 ? jwk.kid : await calculateJwkThumbprint(members, 'sha256')
  return { kid, alg: 'RS256', privateKey, publicJwk: { kty: 'RSA', kid, use: 'sig', alg: 'RS256', n: members.n, e: members.e } }
}

/**
 * Builds a snapshot from a JWK Set of private keys. The active key is the one
 * named by the set's `active` member (a kid), else the first key.
 */
export async function keySetFromJwks(doc: unknown): Promise<KeySetSnapshot> {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new KeySetError('a JWK Set must be an object with a "keys" array')
  }
  const raw = (doc as { keys: JWK[]; active?: unknown }).keys
  if (raw.length === 0) throw new KeySetError('the key set is empty')
  const keys = await Promise.all(raw.map((k, i) => toSigningKey(k, i)))
  const kids = new Set<string>()
  for (const k of keys) {
    if (kids.has(k.kid)) throw new KeySetError(`duplicate kid ${k.kid}`)
    kids.add(k.kid)
  }
  const activeKid = (doc as { active?: unknown }).active
  let active = keys[0]!
  if (activeKid !== undefined) {
    const found = keys.find((k) => k.kid === activeKid)
    if (!found) throw new KeySetError(`"active" names kid ${String(activeKid)}, which is not in the set`)
    active = found
  }
  return snapshot(active, keys)
}

export function snapshot(active: SigningKey, keys: readonly SigningKey[]): KeySetSnapshot {
  const jwks = { keys: keys.map((k) => k.publicJwk) }
  const jwksBody = JSON.stringify(jwks)
  const etag = `"${createHash('sha256').update(jwksBody).digest('base64url').slice(0, 27)}"`
  return { active, keys, jwks, jwksBody, etag }
}

export async function loadKeySetFile(path: string): Promise<KeySetSnapshot> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new KeySetError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new KeySetError(`${path} is not JSON`)
  }
  return await keySetFromJwks(doc)
}

/** A fresh RSA-2048 private JWK (dev key, `gatehouse keys generate`). */
export function generateRsaJwk(): JWK {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return privateKey.export({ format: 'jwk' }) as JWK
}

/** The development fallback: one generated key, never used in production. */
export async function generateDevKeySet(): Promise<KeySetSnapshot> {
  return await keySetFromJwks({ keys: [generateRsaJwk()] })
}

/**
 * Holds the current key set. Issue-7 style reloads swap the snapshot
 * atomically; readers take `current()` once per request.
 */
export class KeyRing {
  #snap: KeySetSnapshot
  constructor(initial: KeySetSnapshot) {
    this.#snap = initial
  }
  current(): KeySetSnapshot {
    return this.#snap
  }
  replace(next: KeySetSnapshot): void {
    this.#snap = next
  }
}
