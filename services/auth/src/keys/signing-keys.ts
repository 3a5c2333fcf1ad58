import { readFile } from 'node:fs/promises'
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto'
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
 * Per-key lifecycle metadata, kept in the set's non-JWK member `gatehouse`
 * (`{"<kid>": {...}}`), so a plain JWK Set stays a valid key set file.
 * Times are seconds since the epoch, like JWT NumericDate (RFC 7519 §2).
 */
export interface KeyMeta {
  /** When the key was first published at /jwks.json. */
  published_at: number
  /** When the key starts (or started) signing; absent for a key that has never been activated. */
  activate_at?: number
}

/** The key set as stored (file or Redis): private JWKs plus lifecycle metadata. */
export interface KeySetDocument {
  keys: JWK[]
  /** Legacy: names the active key of a set without activation metadata. */
  active?: string
  gatehouse?: Record<string, KeyMeta>
}

/**
 * A parsed key set with its activation schedule. The key signing at time t
 * is the one with the latest activation at or before t, so every replica
 * holding the same set switches keys at the same instant, whenever it read
 * the set (DESIGN §7: they agree on the active key).
 */
export interface LoadedKeySet extends KeySetSnapshot {
  /** kid → activation, seconds since the epoch (-Infinity: active since before any schedule). */
  readonly activations: ReadonlyMap<string, number>
  /** kid → metadata as stored (keys without metadata have none). */
  readonly meta: ReadonlyMap<string, KeyMeta>
  /** The document as read, every JWK carrying its kid: what the key lifecycle rewrites. */
  readonly doc: KeySetDocument
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0
}

function parseMeta(doc: Record<string, unknown>, kids: ReadonlySet<string>): Map<string, KeyMeta> {
  const out = new Map<string, KeyMeta>()
  const raw = doc.gatehouse
  if (raw === undefined) return out
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new KeySetError('"gatehouse" must be an object of per-kid metadata')
  for (const [kid, m] of Object.entries(raw as Record<string, unknown>)) {
    if (!kids.has(kid)) throw new KeySetError(`"gatehouse" has metadata for kid ${kid}, which is not in the set`)
    if (typeof m !== 'object' || m === null) throw new KeySetError(`"gatehouse"."${kid}" must be an object`)
    const { published_at, activate_at } = m as Record<string, unknown>
    if (!isTime(published_at)) throw new KeySetError(`"gatehouse"."${kid}".published_at must be seconds since the epoch`)
    if (activate_at !== undefined && !isTime(activate_at)) throw new KeySetError(`"gatehouse"."${kid}".activate_at must be seconds since the epoch`)
    out.set(kid, activate_at === undefined ? { published_at } : { published_at, activate_at })
  }
  return out
}

/** The key that signs at `nowMs`: the latest activation at or before it. */
export function activeKeyAt(set: Pick<LoadedKeySet, 'keys' | 'activations'>, nowMs: number): SigningKey | null {
  const now = nowMs / 1000
  let best: SigningKey | null = null
  let bestAt = Number.NEGATIVE_INFINITY
  for (const k of set.keys) {
    const at = set.activations.get(k.kid)
    if (at === undefined || at > now) continue
    if (best === null || at > bestAt) {
      best = k
      bestAt = at
    }
  }
  return best
}

/**
 * Parses a JWK Set of private keys with its lifecycle metadata. Without any
 * `activate_at`, the key named by the set's `active` member (a kid), else the
 * first key, is active (the plain format); with a schedule, the key whose
 * activation is the latest at or before `nowMs` is.
 */
export async function keySetFromJwks(doc: unknown, nowMs: number = Date.now()): Promise<LoadedKeySet> {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new KeySetError('a JWK Set must be an object with a "keys" array')
  }
  const d = doc as Record<string, unknown> & { keys: JWK[] }
  const raw = d.keys
  if (raw.length === 0) throw new KeySetError('the key set is empty')
  const keys = await Promise.all(raw.map((k, i) => toSigningKey(k, i)))
  const kids = new Set<string>()
  for (const k of keys) {
    if (kids.has(k.kid)) throw new KeySetError(`duplicate kid ${k.kid}`)
    kids.add(k.kid)
  }
  const activeKid = d.active
  if (activeKid !== undefined && !kids.has(activeKid as string)) {
    throw new KeySetError(`"active" names kid ${String(activeKid)}, which is not in the set`)
  }
  const meta = parseMeta(d, kids)
  const scheduled = [...meta.values()].some((m) => m.activate_at !== undefined)
  const activations = new Map<string, number>()
  const times = new Set<number>()
  for (const [i, k] of keys.entries()) {
    const at = meta.get(k.kid)?.activate_at
    if (at !== undefined) {
      if (times.has(at)) throw new KeySetError(`two keys activate at the same time (${at})`)
      times.add(at)
      activations.set(k.kid, at)
    } else if (k.kid === activeKid || (activeKid === undefined && !scheduled && i === 0)) {
      activations.set(k.kid, Number.NEGATIVE_INFINITY)
    }
  }
  const active = activeKeyAt({ keys, activations }, nowMs)
  if (active === null) throw new KeySetError(`no key is active at ${new Date(nowMs).toISOString()} (every activate_at is later)`)
  const normalized: KeySetDocument = { keys: raw.map((jwk, i) => ({ ...jwk, kid: keys[i]!.kid })) }
  if (typeof activeKid === 'string') normalized.active = activeKid
  if (meta.size > 0) normalized.gatehouse = Object.fromEntries(meta)
  return { ...snapshot(active, keys), activations, meta, doc: normalized }
}

export function snapshot(active: SigningKey, keys: readonly SigningKey[]): KeySetSnapshot {
  const jwks = { keys: keys.map((k) => k.publicJwk) }
  const jwksBody = JSON.stringify(jwks)
  const etag = `"${createHash('sha256').update(jwksBody).digest('base64url').slice(0, 27)}"`
  return { active, keys, jwks, jwksBody, etag }
}

export async function loadKeySetFile(path: string, nowMs: number = Date.now()): Promise<LoadedKeySet> {
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
  return await keySetFromJwks(doc, nowMs)
}

/** A fresh RSA-2048 private JWK (dev key, `gatehouse keys generate`). */
export function generateRsaJwk(): JWK {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return privateKey.export({ format: 'jwk' }) as JWK
}

/** The same off the event loop, for a running service (automatic rotation). */
export async function generateRsaJwkAsync(): Promise<JWK> {
  const privateKey = await new Promise<KeyObject>((resolve, reject) =>
    generateKeyPair('rsa', { modulusLength: 2048 }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  )
  return privateKey.export({ format: 'jwk' }) as JWK
}

/** The development fallback: one generated key, never used in production. */
export async function generateDevKeySet(): Promise<LoadedKeySet> {
  return await keySetFromJwks({ keys: [generateRsaJwk()] })
}

/** A fresh one-key set with its metadata (`gatehouse keys generate`, a new Redis key set). */
export async function newKeySetDocument(nowMs: number): Promise<KeySetDocument> {
  const jwk = generateRsaJwk()
  const { kid } = await toSigningKey(jwk, 0)
  const now = Math.floor(nowMs / 1000)
  return { keys: [{ ...jwk, kid }], gatehouse: { [kid]: { published_at: now, activate_at: now } } }
}

/** The kid a private JWK gets (RFC 7638 thumbprint unless it names one), validating it. */
export async function kidOf(jwk: JWK): Promise<string> {
  return (await toSigningKey(jwk, 0)).kid
}

/**
 * Holds the current key set. A reload swaps the set atomically; readers take
 * `current()` once per request. With an activation schedule, `current()`
 * answers for the injected clock, so a scheduled activation takes effect at
 * its instant without a reload. Snapshots are stable objects (callers may
 * cache per snapshot) until the set or the active key changes.
 */
export class KeyRing {
  #set: KeySetSnapshot | LoadedKeySet
  #snap: KeySetSnapshot
  readonly #clock: () => number

  constructor(initial: KeySetSnapshot | LoadedKeySet, clock: () => number = Date.now) {
    this.#clock = clock
    this.#set = initial
    this.#snap = this.#snapshotOf(initial)
  }

  current(): KeySetSnapshot {
    const set = this.#set
    if (!('activations' in set)) return set
    const active = activeKeyAt(set, this.#clock()) ?? set.active
    if (active !== this.#snap.active) this.#snap = { active, keys: set.keys, jwks: set.jwks, jwksBody: set.jwksBody, etag: set.etag }
    return this.#snap
  }

  /** The whole set (with its schedule when it has one). */
  get set(): KeySetSnapshot | LoadedKeySet {
    return this.#set
  }

  replace(next: KeySetSnapshot | LoadedKeySet): void {
    this.#set = next
    this.#snap = this.#snapshotOf(next)
  }

  #snapshotOf(set: KeySetSnapshot | LoadedKeySet): KeySetSnapshot {
    if (!('activations' in set)) return set
    const active = activeKeyAt(set, this.#clock()) ?? set.active
    return { active, keys: set.keys, jwks: set.jwks, jwksBody: set.jwksBody, etag: set.etag }
  }
}
