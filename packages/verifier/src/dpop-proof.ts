import { createHash, createHmac, createPublicKey, constants, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { InvalidDpopProof, UseDpopNonce } from '@gatehouse/service-kit'

/**
 * DPoP proofs (RFC 9449 §4), checked the same way wherever one arrives: at the auth service's
 * /token and /userinfo and at every resource server through the verifier. The checks are §4.3's
 * list in its order; each failure is `invalid_dpop_proof` (or `use_dpop_nonce` for a missing or
 * stale server nonce), with the reason in `detail` (logged, never sent).
 *
 * Verification is synchronous node:crypto with public keys imported once per thumbprint (a client
 * keeps its key for its session, so the cache hits); jose is not used here because its WebCrypto
 * path costs about twice as much per signature, and a proof is checked on every DPoP request.
 * Replay (single-use `jti`, §11.1) is the caller's step after this one, through a
 * `DpopReplayCache`: in memory per process, or shared through Redis by the auth service.
 */

/** The algorithms a proof may use (DESIGN §10.3): asymmetric only; `none` and HMAC never. */
export const DPOP_ALGORITHMS = ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'] as const
export type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number]

/** A proof is a small JWS; anything longer is refused before it is parsed. */
export const MAX_PROOF_LENGTH = 8192

export interface DpopProofCheck {
  /** The request's method, compared exactly with `htm`. */
  method: string
  /** The absolute URL the request was sent to; its query and fragment are ignored (§4.3 item 9). */
  url: string
  /** Seconds since the epoch. */
  now: number
  /** How old a proof's `iat` may be, seconds (the proof's lifetime). */
  maxAgeSeconds: number
  /** Clock skew accepted on either side of `iat`, seconds. */
  clockToleranceSeconds: number
  /** At resource servers: the access token the proof must name in `ath` (§4.3 item 11). */
  accessToken?: string
  /** When set, the proof's `nonce` must satisfy it, else `use_dpop_nonce` (§8, §9). */
  nonce?: (presented: string | undefined) => boolean
  /** Narrows DPOP_ALGORITHMS. */
  algorithms?: readonly string[]
}

export interface VerifiedDpopProof {
  /** The SHA-256 JWK thumbprint of the proof's key (RFC 7638), base64url: `cnf.jkt`. */
  jkt: string
  jti: string
  /** Seconds since the epoch. */
  iat: number
  alg: DpopAlgorithm
}

const B64URL = /^[A-Za-z0-9_-]+$/
/** Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']
const MAX_JTI = 256
const MIN_RSA_BITS = 2048

function fail(description: string, detail: string): never {
  throw new InvalidDpopProof(description, { detail })
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
  } catch {
    fail('the DPoP proof is not a JWT', `${what} is not JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('the DPoP proof is not a JWT', `${what} is not an object`)
  return value as Record<string, unknown>
}

/** The key type and curve each algorithm needs. */
function keyTypeProblem(alg: DpopAlgorithm, jwk: Record<string, unknown>): string | null {
  switch (alg) {
    case 'ES256':
      return jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.x === 'string' && typeof jwk.y === 'string' ? null : 'ES256 needs an EC P-256 key'
    case 'RS256':
    case 'PS256':
      return jwk.kty === 'RSA' && typeof jwk.n === 'string' && typeof jwk.e === 'string' ? null : `${alg} needs an RSA key`
    case 'EdDSA':
    case 'Ed25519':
      return jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && typeof jwk.x === 'string' ? null : `${alg} needs an Ed25519 key`
  }
}

/** RFC 7638 §3.2: the required members of the key, in lexicographic order, without whitespace. */
function thumbprintInput(jwk: Record<string, unknown>): string {
  switch (jwk.kty) {
    case 'EC':
      return JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
    case 'RSA':
      return JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })
    case 'OKP':
      return JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })
    default:
      throw new TypeError(`no thumbprint for key type ${String(jwk.kty)}`)
  }
}

/** The SHA-256 JWK thumbprint (RFC 7638) of a public EC, RSA or OKP key, base64url. */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  return createHash('sha256').update(thumbprintInput(jwk)).digest('base64url')
}

/** `ath` (§4.2): base64url SHA-256 of the access token's ASCII. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url')
}

/**
 * The URI a proof's `htu` is compared as (§4.3 item 9, RFC 3986 §6.2.2–6.2.3): without query and
 * fragment, scheme and host in lower case, the scheme's default port dropped, dot segments
 * resolved, an empty path as `/`, and percent-encodings in upper case. Null when it is not an
 * absolute http(s) URL.
 */
export function normalizeHtu(uri: string): string | null {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return null
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null
  if (url.username !== '' || url.password !== '') return null
  const path = url.pathname.replace(/%[0-9a-f]{2}/gi, (e) => e.toUpperCase())
  return `${url.protocol}//${url.host}${path}`
}

/** Public keys imported once per thumbprint; a bounded map, oldest first out. */
const KEY_CACHE_SIZE = 1000
const keyCache = new Map<string, KeyObject>()

function publicKey(jkt: string, jwk: Record<string, unknown>): KeyObject {
  let key = keyCache.get(jkt)
  if (key !== undefined) return key
  try {
    const members: Record<string, unknown> =
      jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : jwk.kty === 'EC' ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: 'OKP', crv: jwk.crv, x: jwk.x }
    key = createPublicKey({ key: members as never, format: 'jwk' })
  } catch {
    fail('the DPoP proof key is not a valid public key', 'jwk import failed')
  }
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    fail('the DPoP proof key is too weak', 'rsa modulus below 2048 bits')
  }
  if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string)
  keyCache.set(jkt, key)
  return key
}

function signatureValid(alg: DpopAlgorithm, key: KeyObject, input: Buffer, signature: Buffer): boolean {
  try {
    switch (alg) {
      case 'ES256':
        // RFC 7518 §3.4: R || S, 32 bytes each.
        return signature.length === 64 && verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature)
      case 'RS256':
        return verify('sha256', input, key, signature)
      case 'PS256':
        // RFC 7518 §3.5: MGF1 with SHA-256, salt as long as the hash.
        return verify('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature)
      case 'EdDSA':
      case 'Ed25519':
        return verify(null, input, key, signature)
    }
  } catch {
    return false
  }
}

/**
 * Checks one DPoP proof against the request it came with (RFC 9449 §4.3). Throws
 * `invalid_dpop_proof` or `use_dpop_nonce`; the replay check (`jti`) is the caller's next step.
 */
export function verifyDpopProof(proof: string, check: DpopProofCheck): VerifiedDpopProof {
  // §4.3 items 1-2: one well-formed JWT.
  if (proof.length > MAX_PROOF_LENGTH) fail('the DPoP proof is too large', 'oversized')
  const parts = proof.split('.')
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) fail('the DPoP proof is not a JWT', 'not a compact JWS')
  const [h, p, s] = parts as [string, string, string]
  const header = decodeJson(h, 'header')

  // Items 4-7: typ, an asymmetric algorithm we advertise, a public key in `jwk`.
  if (header.typ !== 'dpop+jwt') fail('the DPoP proof must have typ dpop+jwt', 'typ')
  const allowed = check.algorithms ?? DPOP_ALGORITHMS
  const alg = header.alg
  if (typeof alg !== 'string' || !allowed.includes(alg) || !(DPOP_ALGORITHMS as readonly string[]).includes(alg)) {
    fail('the DPoP proof algorithm is not supported', `alg ${typeof alg === 'string' ? alg.slice(0, 16) : typeof alg}`)
  }
  if (header.crit !== undefined) fail('the DPoP proof has critical header parameters this server does not understand', 'crit')
  const jwk = header.jwk
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) fail('the DPoP proof must carry its public key in jwk', 'no jwk')
  const key = jwk as Record<string, unknown>
  if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(key, m))) fail('the DPoP proof jwk must not hold a private key', 'private jwk')
  const kind = keyTypeProblem(alg as DpopAlgorithm, key)
  if (kind !== null) fail('the DPoP proof jwk does not match its algorithm', kind)
  const jkt = jwkThumbprint(key)

  // Item 6: the signature, with the key in the header.
  if (!signatureValid(alg as DpopAlgorithm, publicKey(jkt, key), Buffer.from(`${h}.${p}`, 'ascii'), Buffer.from(s, 'base64url'))) {
    fail('the DPoP proof signature is invalid', 'signature')
  }
  const claims = decodeJson(p, 'payload')

  // Item 8-10: the request it was made for, and when.
  const { jti, htm, htu, iat } = claims
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI) fail('the DPoP proof needs a jti', 'jti')
  if (htm !== check.method) fail('the DPoP proof was made for another HTTP method', 'htm')
  const target = normalizeHtu(check.url)
  if (typeof htu !== 'string' || target === null || normalizeHtu(htu) !== target) fail('the DPoP proof was made for another URL', 'htu')
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat)) fail('the DPoP proof needs an iat', 'iat')
  if (iat > check.now + check.clockToleranceSeconds) fail('the DPoP proof is issued in the future', 'iat future')
  if (iat < check.now - check.maxAgeSeconds - check.clockToleranceSeconds) fail('the DPoP proof is too old', 'iat stale')

  // Item 11: at a resource server, the token it is presented with.
  if (check.accessToken !== undefined) {
    const ath = claims.ath
    const expected = accessTokenHash(check.accessToken)
    // Compared as bytes: a string of the right length may hold multi-byte characters.
    const given = Buffer.from(typeof ath === 'string' ? ath : '')
    if (typeof ath !== 'string' || given.length !== expected.length || !timingSafeEqual(given, Buffer.from(expected))) {
      fail('the DPoP proof does not match the access token', 'ath')
    }
  }
  // Item 10 (nonce): checked last, so that a client retrying with the nonce had a valid proof.
  if (check.nonce !== undefined) {
    const nonce = claims.nonce
    if (!check.nonce(typeof nonce === 'string' ? nonce : undefined)) throw new UseDpopNonce('the DPoP proof must carry the current DPoP-Nonce', { detail: 'nonce' })
  }
  return { jkt, jti, iat, alg: alg as DpopAlgorithm }
}

/** Remembers proofs already used (§11.1): `first` is true the first time a key is seen. */
export interface DpopReplayCache {
  /** `key` names one proof (`replayKey`); remember it until `expiresAtMs`. */
  claim(key: string, expiresAtMs: number): Promise<boolean> | boolean
}

/**
 * Until when (ms) a proof must be remembered (§11.1): as long as `verifyDpopProof` could accept it
 * with the same window, which compares whole seconds, so one second past `iat + maxAge + tolerance`.
 */
export function replayUntil(proof: Pick<VerifiedDpopProof, 'iat'>, maxAgeSeconds: number, clockToleranceSeconds: number): number {
  return (proof.iat + maxAgeSeconds + clockToleranceSeconds + 1) * 1000
}

/** A fixed-size name for a proof: its key's thumbprint and its jti, hashed (the jti is the client's). */
export function replayKey(proof: Pick<VerifiedDpopProof, 'jkt' | 'jti'>): string {
  return createHash('sha256').update(`${proof.jkt}.${proof.jti}`).digest('base64url')
}

/**
 * A process's own replay cache. Bounded: when full, entries past their expiry go first; if all are
 * live, a new proof is refused (reported as a replay) rather than an old one forgotten, so the bound
 * can never re-open a replay window. `maxEntries` should exceed the proofs one process accepts in
 * a proof lifetime.
 */
export class MemoryDpopReplayCache implements DpopReplayCache {
  readonly #seen = new Map<string, number>()
  /** No entry expires before this (set when a sweep found the cache full of live entries). */
  #liveUntil = 0
  constructor(
    private readonly clock: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  claim(key: string, expiresAtMs: number): boolean {
    const now = this.clock()
    const until = this.#seen.get(key)
    if (until !== undefined && until > now) return false
    if (this.#seen.size >= this.maxEntries) {
      // Full of live entries: refused without scanning again until the earliest of them expires
      // (a full scan per request would let one busy client make every request cost milliseconds).
      if (now < this.#liveUntil) return false
      let earliest = Infinity
      for (const [k, exp] of this.#seen) {
        if (exp <= now) this.#seen.delete(k)
        else if (exp < earliest) earliest = exp
      }
      if (this.#seen.size >= this.maxEntries) {
        this.#liveUntil = earliest
        return false
      }
    }
    this.#seen.set(key, expiresAtMs)
    return true
  }

  get size(): number {
    return this.#seen.size
  }
}

/**
 * Server nonces (§8, §9) without shared state: a nonce is the number of the time window it was
 * made in and an HMAC of it, so every replica holding the same secret makes and accepts the same
 * nonces. The current and the previous window's nonces are accepted, so a nonce lives between one
 * and two windows.
 */
export class DpopNonces {
  readonly #secret: Buffer
  constructor(
    secret: Buffer,
    private readonly clock: () => number,
    private readonly windowMs = 5 * 60_000,
  ) {
    if (secret.length < 16) throw new TypeError('the DPoP nonce secret must be at least 16 bytes')
    this.#secret = Buffer.from(secret)
  }

  /** The nonce to send in `DPoP-Nonce` now. */
  current(): string {
    return this.#make(Math.floor(this.clock() / this.windowMs))
  }

  /** True for the current or the previous window's nonce. */
  valid(nonce: string | undefined): boolean {
    if (nonce === undefined) return false
    const window = Math.floor(this.clock() / this.windowMs)
    const given = Buffer.from(nonce)
    if (given.length !== 35) return false
    return [window, window - 1].some((w) => timingSafeEqual(given, Buffer.from(this.#make(w))))
  }

  #make(window: number): string {
    const counter = Buffer.alloc(8)
    counter.writeBigUInt64BE(BigInt(Math.max(0, window)))
    // 8 bytes of window + 18 bytes of MAC = 26 bytes = 35 base64url characters.
    const mac = createHmac('sha256', this.#secret).update(counter).digest().subarray(0, 18)
    return Buffer.concat([counter, mac]).toString('base64url')
  }
}
