import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import { open, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import type { Cluster, Redis } from 'ioredis'
import { keySetFromJwks, KeySetError, type KeySetDocument, type LoadedKeySet } from './signing-keys.js'
import type { KeyChange, KeyEvent } from './key-lifecycle.js'
import { redisCall } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, signingKeyLockKey, signingKeySetKey } from '../store/key-names.js'

/**
 * Where the signing key set lives (DESIGN §7): a file (SIGNING_KEYS_FILE, a
 * Kubernetes Secret or a file on the host) or Redis (SIGNING_KEYS_STORE=redis,
 * encrypted at rest with SIGNING_KEYS_ENCRYPTION_SECRET). Both are versioned
 * and written with compare-and-set, so two writers never lose each other's
 * step: the second one re-reads and re-decides.
 */
export interface KeySetStore {
  /** For messages: `file <path>` or `redis <key>`. */
  readonly location: string
  /** The version of what is stored now (cheap; null when there is no set). */
  version(): Promise<string | null>
  read(): Promise<{ doc: unknown; version: string } | null>
  /**
   * Stores `doc` if the stored version is still `expected` (null: only if there is no set yet).
   * Returns the new version, or null when someone else wrote first.
   */
  write(doc: KeySetDocument, expected: string | null): Promise<string | null>
}

// ---------------------------------------------------------------------------------------------
// File

const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url')

export class FileKeySetStore implements KeySetStore {
  readonly location: string
  constructor(readonly path: string) {
    this.location = `file ${path}`
  }

  async version(): Promise<string | null> {
    return (await this.#readText())?.version ?? null
  }

  async read(): Promise<{ doc: unknown; version: string } | null> {
    const got = await this.#readText()
    if (got === null) return null
    try {
      return { doc: JSON.parse(got.text) as unknown, version: got.version }
    } catch {
      throw new KeySetError(`${this.path} is not JSON`)
    }
  }

  /**
   * Under a lock file (`<path>.lock`, created exclusively) so two CLI runs
   * cannot interleave; the new content is written beside the file and renamed
   * over it, so a reader never sees half a key set. Mode 0600: private keys.
   */
  async write(doc: KeySetDocument, expected: string | null): Promise<string | null> {
    const lock = `${this.path}.lock`
    let handle
    try {
      handle = await open(lock, 'wx', 0o600)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') throw new KeySetError(`${lock} exists: another gatehouse command is changing the key set (delete the lock file if none is running)`)
      throw new KeySetError(`cannot lock ${this.path}: ${code ?? 'error'}`)
    }
    try {
      const current = await this.#readText()
      if ((current?.version ?? null) !== expected) return null
      const text = `${JSON.stringify(doc, null, 2)}\n`
      const tmp = `${this.path}.${randomBytes(6).toString('hex')}.tmp`
      try {
        await writeFile(tmp, text, { mode: 0o600, flag: 'wx' })
        await rename(tmp, this.path)
      } catch (err) {
        await unlink(tmp).catch(() => undefined)
        throw new KeySetError(`cannot write ${this.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
      }
      return sha256(text)
    } finally {
      await handle.close()
      await unlink(lock).catch(() => undefined)
    }
  }

  async #readText(): Promise<{ text: string; version: string } | null> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return null
      throw new KeySetError(`cannot read ${this.path}: ${code ?? 'error'}`)
    }
    return { text, version: sha256(text) }
  }
}

// ---------------------------------------------------------------------------------------------
// Redis, encrypted at rest

/**
 * AES-256-GCM under a key derived (HKDF-SHA256) from the key-encryption
 * secret, so a Redis dump or a replica's memory-less snapshot holds no usable
 * private key. The blob is `v1.<base64url(iv | ciphertext | tag)>`; the
 * associated data binds it to its purpose.
 */
export class KeySetCipher {
  static readonly AAD = Buffer.from('gatehouse signing keys v1')
  readonly #key: Buffer
  constructor(secret: string) {
    if (typeof secret !== 'string' || secret.length < 32) throw new TypeError('the key-encryption secret must be at least 32 characters')
    this.#key = Buffer.from(hkdfSync('sha256', secret, 'gatehouse', 'signing-keys-encryption v1', 32))
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv)
    cipher.setAAD(KeySetCipher.AAD)
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return `v1.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`
  }

  decrypt(blob: string): string {
    const m = /^v1\.([A-Za-z0-9_-]+)$/.exec(blob)
    const raw = m ? Buffer.from(m[1]!, 'base64url') : Buffer.alloc(0)
    if (raw.length < 12 + 16 + 1) throw new KeySetError('the stored key set is malformed')
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, 12))
      decipher.setAAD(KeySetCipher.AAD)
      decipher.setAuthTag(raw.subarray(raw.length - 16))
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8')
    } catch {
      throw new KeySetError('cannot decrypt the stored key set: is SIGNING_KEYS_ENCRYPTION_SECRET the one it was written with?')
    }
  }
}

/** KEYS[1] the key set hash; ARGV[1] expected version ('' = must not exist), ARGV[2] blob. Returns the new version or 0. */
const CAS_WRITE = `
local v = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if v then return 0 end
elseif v ~= ARGV[1] then
  return 0
end
local n = (tonumber(v) or 0) + 1
redis.call('HSET', KEYS[1], 'version', string.format('%d', n), 'blob', ARGV[2])
return n
`

/** KEYS[1] lock key; ARGV[1] the holder's token. Deletes the lock only if it is still ours. */
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

export interface RedisKeySetStoreOptions {
  redis: Redis | Cluster
  /** SIGNING_KEYS_ENCRYPTION_SECRET */
  secret: string
  keyPrefix?: string
}

export class RedisKeySetStore implements KeySetStore {
  readonly location: string
  readonly #redis: Redis | Cluster
  readonly #cipher: KeySetCipher
  readonly #key: string
  readonly #lockKey: string

  constructor(opts: RedisKeySetStoreOptions) {
    this.#redis = opts.redis
    this.#cipher = new KeySetCipher(opts.secret)
    this.#key = signingKeySetKey(opts.keyPrefix ?? DEFAULT_KEY_PREFIX)
    this.#lockKey = signingKeyLockKey(opts.keyPrefix ?? DEFAULT_KEY_PREFIX)
    this.location = `redis ${this.#key}`
  }

  async version(): Promise<string | null> {
    return await redisCall('keys.version', () => this.#redis.hget(this.#key, 'version'))
  }

  async read(): Promise<{ doc: unknown; version: string } | null> {
    const [version, blob] = await redisCall('keys.read', () => this.#redis.hmget(this.#key, 'version', 'blob'))
    if (version === null || version === undefined || blob === null || blob === undefined) return null
    const text = this.#cipher.decrypt(blob)
    try {
      return { doc: JSON.parse(text) as unknown, version }
    } catch {
      throw new KeySetError('the stored key set is not JSON')
    }
  }

  async write(doc: KeySetDocument, expected: string | null): Promise<string | null> {
    const blob = this.#cipher.encrypt(JSON.stringify(doc))
    const n = await redisCall('keys.write', () => this.#redis.eval(CAS_WRITE, 1, this.#key, expected ?? '', blob))
    return n === 0 ? null : String(n)
  }

  /**
   * `SET NX PX`: the one replica that gets it performs an automatic rotation
   * step; the lock expires by itself if that replica dies. Returns a release
   * function, or null when another replica holds it.
   */
  async lock(ttlMs: number): Promise<(() => Promise<void>) | null> {
    const token = randomBytes(16).toString('base64url')
    const ok = await redisCall('keys.lock', () => this.#redis.set(this.#lockKey, token, 'PX', ttlMs, 'NX'))
    if (ok !== 'OK') return null
    return async () => {
      await redisCall('keys.unlock', () => this.#redis.eval(RELEASE_LOCK, 1, this.#lockKey, token)).catch(() => undefined)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Applying a step

export interface AppliedKeyChange {
  set: LoadedKeySet
  version: string
  events: KeyEvent[]
}

/**
 * Reads the set, lets `step` decide from it, and writes the result if nobody
 * wrote meanwhile; otherwise decides again from the newer set. Returns null
 * when the step finds nothing to do. The result is parsed before it is
 * written, so an invalid set is never stored.
 */
export async function applyKeyChange(
  store: KeySetStore,
  clock: () => number,
  step: (set: LoadedKeySet) => KeyChange | null | Promise<KeyChange | null>,
  attempts = 5,
): Promise<AppliedKeyChange | null> {
  for (let i = 0; i < attempts; i++) {
    const current = await store.read()
    if (current === null) throw new KeySetError(`there is no key set at ${store.location}`)
    const set = await keySetFromJwks(current.doc, clock())
    const change = await step(set)
    if (change === null) return null
    const next = await keySetFromJwks(change.doc, clock())
    const version = await store.write(change.doc, current.version)
    if (version !== null) return { set: next, version, events: change.events }
  }
  throw new KeySetError(`the key set at ${store.location} kept changing under this command; try again`)
}
