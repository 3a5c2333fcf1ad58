/*
 * Over 300 lines: one module per concern would scatter what must stay in one place — the list of
 * hash formats a directory may hold, each format's parser, its cost bounds and its verifier, so a
 * format can never be verified without passing the same bounds it was imported under.
 */
import { pbkdf2, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto'
import { parseOptions as argon2Options, verify as argon2Verify } from '@node-rs/argon2'
import { parseOptions as bcryptOptions, verify as bcryptVerify } from '@node-rs/bcrypt'

/**
 * Password hashes imported from other identity providers (DESIGN §10.2), verified as they are
 * and replaced by our own argon2id at the next successful sign-in (needsRehash).
 *
 * The stored forms (one string each):
 * - argon2id / argon2i, PHC: `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`
 * - bcrypt: `$2a$`, `$2b$`, `$2y$` + two-digit cost + 53 characters
 * - PBKDF2, PHC-like: `$pbkdf2-<sha1|sha256|sha512>$i=<iterations>[,l=<bytes>]$<salt>$<hash>`
 *   (salt and hash in standard base64, padding optional; `l`, when given, is the hash's length)
 * - PBKDF2, passlib: `$pbkdf2-sha256$<rounds>$<salt>$<hash>`, `$pbkdf2-sha512$…`, and `$pbkdf2$…`
 *   (SHA-1), salt and hash in passlib's "adapted base64" (`.` for `+`, no padding)
 * - scrypt: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (parameters in any order; standard
 *   base64, padding optional: passlib's and PowerDNS's forms)
 * Keycloak's credential (importKeycloakCredential) is turned into the PHC-like PBKDF2 string, or
 * into the argon2 PHC string for Keycloak's argon2 provider.
 *
 * Every parameter that sets the work of a check is bounded (HASH_BOUNDS): a hash that asks for more
 * is refused at import and never verified, so an imported record cannot make a sign-in burn seconds
 * of CPU or gigabytes of memory. Unknown or malformed hashes verify false and never throw.
 */
export const HASH_BOUNDS = {
  argon2: { maxMemoryKiB: 262_144, maxPasses: 16, maxLanes: 16 },
  bcrypt: { minCost: 4, maxCost: 14 },
  /** Iterations times the output blocks (each block runs every iteration again). */
  pbkdf2: { maxWork: 2_000_000 },
  scrypt: { maxLn: 20, maxR: 32, maxP: 16, maxMemoryBytes: 256 * 1024 * 1024, maxWork: 2 ** 30 },
  salt: { minBytes: 1, maxBytes: 256 },
  hash: { minBytes: 16, maxBytes: 128 },
} as const

/** What the KDF of our own hashes is (passwords.ts): a hash with anything else is rehashed. */
export const CURRENT_ARGON2ID = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const

type Digest = 'sha1' | 'sha256' | 'sha512'
const DIGEST_BYTES: Record<Digest, number> = { sha1: 20, sha256: 32, sha512: 64 }

type Parsed =
  | { scheme: 'argon2' }
  | { scheme: 'bcrypt' }
  | { scheme: 'pbkdf2'; digest: Digest; iterations: number; salt: Buffer; hash: Buffer }
  | { scheme: 'scrypt'; n: number; r: number; p: number; salt: Buffer; hash: Buffer }

type Parse = { ok: Parsed } | { problem: string }

const B64 = /^[A-Za-z0-9+/]*={0,2}$/
const AB64 = /^[A-Za-z0-9./]*$/

function b64(text: string, adapted: boolean): Buffer | null {
  if (!(adapted ? AB64 : B64).test(text)) return null
  const std = adapted ? text.replace(/\./g, '+') : text
  if (std.replace(/=+$/, '').length % 4 === 1) return null
  return Buffer.from(std, 'base64')
}

function sized(label: string, buf: Buffer | null, bounds: { minBytes: number; maxBytes: number }): string | null {
  if (buf === null) return `its ${label} is not base64`
  if (buf.length < bounds.minBytes || buf.length > bounds.maxBytes) return `its ${label} has ${buf.length} bytes (${bounds.minBytes} to ${bounds.maxBytes} accepted)`
  return null
}

function int(text: string | undefined): number | null {
  return text !== undefined && /^[1-9]\d{0,9}$/.test(text) ? Number(text) : null
}

function parseArgon2(hash: string): Parse {
  let o
  try {
    o = argon2Options(hash)
  } catch {
    return { problem: 'a malformed argon2 hash' }
  }
  const wanted = hash.startsWith('$argon2id$') ? 2 : 1
  if (o.algorithm !== wanted) return { problem: 'a malformed argon2 hash' }
  const b = HASH_BOUNDS.argon2
  if (o.memoryCost > b.maxMemoryKiB || o.timeCost > b.maxPasses || o.parallelism > b.maxLanes) {
    return { problem: `an argon2 hash whose cost is out of bounds (m ≤ ${b.maxMemoryKiB}, t ≤ ${b.maxPasses}, p ≤ ${b.maxLanes})` }
  }
  if (o.outputLen < HASH_BOUNDS.hash.minBytes || o.outputLen > HASH_BOUNDS.hash.maxBytes) return { problem: 'an argon2 hash of an unusual length' }
  return { ok: { scheme: 'argon2' } }
}

function parseBcrypt(hash: string): Parse {
  if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return { problem: 'a malformed bcrypt hash' }
  let cost: number
  try {
    cost = bcryptOptions(hash).cost
  } catch {
    return { problem: 'a malformed bcrypt hash' }
  }
  const b = HASH_BOUNDS.bcrypt
  if (cost < b.minCost || cost > b.maxCost) return { problem: `a bcrypt hash of cost ${cost} (${b.minCost} to ${b.maxCost} accepted)` }
  return { ok: { scheme: 'bcrypt' } }
}

const PBKDF2_PREFIX: Record<string, Digest> = { pbkdf2: 'sha1', 'pbkdf2-sha1': 'sha1', 'pbkdf2-sha256': 'sha256', 'pbkdf2-sha512': 'sha512' }

function parsePbkdf2(hash: string): Parse {
  const parts = hash.split('$')
  // ['', id, params, salt, hash]
  const digest = PBKDF2_PREFIX[parts[1] ?? '']
  if (parts.length !== 5 || digest === undefined) return { problem: 'a malformed PBKDF2 hash' }
  const [, id, params, saltText, hashText] = parts as [string, string, string, string, string]
  let iterations: number | null
  let length: number | null = null
  let adapted: boolean
  if (params.startsWith('i=')) {
    if (id === 'pbkdf2') return { problem: 'a malformed PBKDF2 hash' }
    const m = /^i=(\d+)(?:,l=(\d+))?$/.exec(params)
    iterations = int(m?.[1])
    if (m?.[2] !== undefined) length = int(m[2])
    if (m === null || iterations === null || (m[2] !== undefined && length === null)) return { problem: 'a malformed PBKDF2 hash' }
    adapted = false
  } else {
    if (id === 'pbkdf2-sha1') return { problem: 'a malformed PBKDF2 hash' }
    iterations = int(params)
    if (iterations === null) return { problem: 'a malformed PBKDF2 hash' }
    adapted = true
  }
  const salt = b64(saltText, adapted)
  const out = b64(hashText, adapted)
  const problem = sized('salt', salt, HASH_BOUNDS.salt) ?? sized('hash', out, HASH_BOUNDS.hash)
  if (problem !== null) return { problem: `a PBKDF2 hash: ${problem}` }
  if (length !== null && length !== out!.length) return { problem: 'a PBKDF2 hash whose l= is not its length' }
  const work = iterations * Math.ceil(out!.length / DIGEST_BYTES[digest])
  if (work > HASH_BOUNDS.pbkdf2.maxWork) return { problem: `a PBKDF2 hash whose cost is out of bounds (iterations × blocks ≤ ${HASH_BOUNDS.pbkdf2.maxWork})` }
  return { ok: { scheme: 'pbkdf2', digest, iterations, salt: salt!, hash: out! } }
}

function parseScrypt(hash: string): Parse {
  const parts = hash.split('$')
  if (parts.length !== 5 || parts[1] !== 'scrypt') return { problem: 'a malformed scrypt hash' }
  const values = new Map<string, number | null>()
  for (const kv of parts[2]!.split(',')) {
    const m = /^(ln|r|p)=(\d+)$/.exec(kv)
    if (m === null || values.has(m[1]!)) return { problem: 'a malformed scrypt hash' }
    values.set(m[1]!, int(m[2]))
  }
  const ln = values.get('ln')
  const r = values.get('r')
  const p = values.get('p')
  if (typeof ln !== 'number' || typeof r !== 'number' || typeof p !== 'number') return { problem: 'a malformed scrypt hash' }
  const b = HASH_BOUNDS.scrypt
  const n = 2 ** ln
  if (ln > b.maxLn || r > b.maxR || p > b.maxP || 128 * r * n > b.maxMemoryBytes || 128 * r * n * p > b.maxWork) {
    return { problem: `a scrypt hash whose cost is out of bounds (ln ≤ ${b.maxLn}, r ≤ ${b.maxR}, p ≤ ${b.maxP}, 128·r·N ≤ ${b.maxMemoryBytes} bytes)` }
  }
  const salt = b64(parts[3]!, false)
  const out = b64(parts[4]!, false)
  const problem = sized('salt', salt, HASH_BOUNDS.salt) ?? sized('hash', out, HASH_BOUNDS.hash)
  if (problem !== null) return { problem: `a scrypt hash: ${problem}` }
  return { ok: { scheme: 'scrypt', n, r, p, salt: salt!, hash: out! } }
}

function parse(hash: string): Parse {
  if (typeof hash !== 'string' || hash.length > 1024) return { problem: 'not a password hash' }
  if (hash.startsWith('$argon2id$') || hash.startsWith('$argon2i$')) return parseArgon2(hash)
  if (/^\$2[aby]\$/.test(hash)) return parseBcrypt(hash)
  if (/^\$pbkdf2(-sha(1|256|512))?\$/.test(hash)) return parsePbkdf2(hash)
  if (hash.startsWith('$scrypt$')) return parseScrypt(hash)
  return { problem: 'an unknown hash format (argon2id, argon2i, bcrypt, PBKDF2, scrypt and Keycloak credentials are accepted)' }
}

/** Why a stored-form hash string cannot be kept (format, or a cost out of bounds), or null. */
export function passwordHashProblem(hash: string): string | null {
  const r = parse(hash)
  return 'problem' in r ? r.problem : null
}

const pbkdf2Async = (password: BinaryLike, salt: Buffer, iterations: number, length: number, digest: string): Promise<Buffer> =>
  new Promise((resolve, reject) => pbkdf2(password, salt, iterations, length, digest, (err, key) => (err ? reject(err) : resolve(key))))

const scryptAsync = (password: BinaryLike, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => scrypt(password, salt, length, options, (err, key) => (err ? reject(err) : resolve(key))))

/**
 * Checks a password against a hash in any accepted form, in constant time for the comparison.
 * False for a wrong password, an unknown or malformed hash, and a hash whose cost is out of
 * bounds (never run). Never throws.
 */
export async function verifyPasswordHash(hash: string, password: string): Promise<boolean> {
  try {
    const r = parse(hash)
    if ('problem' in r) return false
    const h = r.ok
    switch (h.scheme) {
      case 'argon2':
        return await argon2Verify(hash, password)
      case 'bcrypt':
        return await bcryptVerify(password, hash)
      case 'pbkdf2': {
        const got = await pbkdf2Async(password, h.salt, h.iterations, h.hash.length, h.digest)
        return timingSafeEqual(got, h.hash)
      }
      case 'scrypt': {
        const memory = 128 * h.r * h.n + 128 * h.r * h.p
        const got = await scryptAsync(password, h.salt, h.hash.length, { N: h.n, r: h.r, p: h.p, maxmem: 2 * memory + (1 << 20) })
        return timingSafeEqual(got, h.hash)
      }
    }
  } catch {
    return false
  }
}

/** True unless the hash is our own argon2id at the current parameters (CURRENT_ARGON2ID). */
export function needsRehash(hash: string): boolean {
  if (typeof hash !== 'string' || !hash.startsWith('$argon2id$')) return true
  try {
    const o = argon2Options(hash)
    const c = CURRENT_ARGON2ID
    return o.algorithm !== 2 || o.version !== 1 || o.memoryCost !== c.memoryCost || o.timeCost !== c.timeCost || o.parallelism !== c.parallelism
  } catch {
    return true
  }
}

// ---------------------------------------------------------------------------------------------
// Keycloak

const KEYCLOAK_PBKDF2: Record<string, Digest> = { pbkdf2: 'sha1', 'pbkdf2-sha256': 'sha256', 'pbkdf2-sha512': 'sha512' }

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function jsonField(v: unknown): Record<string, unknown> | null {
  if (isObj(v)) return v
  if (typeof v !== 'string') return null
  try {
    const parsed: unknown = JSON.parse(v)
    return isObj(parsed) ? parsed : null
  } catch {
    return null
  }
}

/** Keycloak's additionalParameters hold lists of strings: `{"memory": ["7168"]}`. */
function kcParam(params: unknown, name: string): string | undefined {
  const v = isObj(params) ? params[name] : undefined
  const first = Array.isArray(v) ? v[0] : v
  return typeof first === 'string' || typeof first === 'number' ? String(first) : undefined
}

const unpadded = (buf: Buffer): string => buf.toString('base64').replace(/=+$/, '')

/**
 * Keycloak's password credential as our stored string: the representation of its REST API and
 * partial exports (`{"algorithm": "pbkdf2-sha256", "hashIterations": 27500, "salt": "<base64>",
 * "value": "<base64>"}`, `hashedSaltedValue` for `value` in older ones) or the raw form of a realm
 * export (`{"secretData": "{\"value\":…,\"salt\":…}", "credentialData": "{\"hashIterations\":…,
 * \"algorithm\":…}"}`). Algorithms: `pbkdf2` (HMAC-SHA1), `pbkdf2-sha256`, `pbkdf2-sha512`, and
 * `argon2` (additionalParameters type, version, memory, parallelism).
 */
export function importKeycloakCredential(credential: Record<string, unknown>): { hash: string } | { problem: string } {
  const secret = jsonField(credential.secretData) ?? credential
  const data = jsonField(credential.credentialData) ?? credential
  const algorithm = data.algorithm
  const iterations = data.hashIterations
  const saltText = secret.salt
  const valueText = secret.value ?? secret.hashedSaltedValue
  if (typeof algorithm !== 'string' || typeof saltText !== 'string' || typeof valueText !== 'string' || typeof iterations !== 'number' || !Number.isSafeInteger(iterations) || iterations < 1) {
    return { problem: 'a Keycloak credential needs algorithm, hashIterations, salt and value' }
  }
  const salt = b64(saltText, false)
  const value = b64(valueText, false)
  if (salt === null || value === null) return { problem: 'a Keycloak credential whose salt or value is not base64' }
  const digest = KEYCLOAK_PBKDF2[algorithm]
  let hash: string
  if (digest !== undefined) {
    hash = `$pbkdf2-${digest}$i=${iterations},l=${value.length}$${unpadded(salt)}$${unpadded(value)}`
  } else if (algorithm === 'argon2') {
    const params = data.additionalParameters
    const type = kcParam(params, 'type') ?? 'id'
    const version = kcParam(params, 'version') ?? '1.3'
    const memory = Number(kcParam(params, 'memory') ?? 7168)
    const lanes = Number(kcParam(params, 'parallelism') ?? 1)
    if ((type !== 'id' && type !== 'i') || (version !== '1.3' && version !== '1.0') || !Number.isSafeInteger(memory) || !Number.isSafeInteger(lanes)) {
      return { problem: 'a Keycloak argon2 credential with unsupported parameters' }
    }
    hash = `$argon2${type}$v=${version === '1.3' ? 19 : 16}$m=${memory},t=${iterations},p=${lanes}$${unpadded(salt)}$${unpadded(value)}`
  } else {
    return { problem: `a Keycloak credential of algorithm ${JSON.stringify(algorithm.slice(0, 32))} (pbkdf2, pbkdf2-sha256, pbkdf2-sha512 and argon2 are accepted)` }
  }
  const problem = passwordHashProblem(hash)
  return problem === null ? { hash } : { problem }
}

/**
 * An imported `password_hash` (DESIGN §10.2) as the string to store: a hash string in one of the
 * forms above is kept as it is; a Keycloak credential (an object, or that object as a JSON string)
 * is converted. Never echoes the hash in a problem.
 */
export function importPasswordHash(value: unknown): { hash: string } | { problem: string } {
  if (typeof value === 'string' && value.trimStart().startsWith('{')) {
    const obj = jsonField(value)
    return obj === null ? { problem: 'password_hash is not valid JSON' } : importKeycloakCredential(obj)
  }
  if (isObj(value)) return importKeycloakCredential(value)
  if (typeof value !== 'string' || value.length === 0) return { problem: 'password_hash must be a hash string or a Keycloak credential object' }
  const problem = passwordHashProblem(value)
  return problem === null ? { hash: value } : { problem }
}
