import type { AuthConfig } from '../config.js'
import { dueRotationAction, dueRotationStep, keyPolicy, normalizedDocument, type KeyPolicy } from './key-lifecycle.js'
import { applyKeyChange, FileKeySetStore, RedisKeySetStore, type KeySetStore } from './key-store.js'
import { generateDevKeySet, KeyRing, keySetFromJwks, KeySetError, newKeySetDocument, type KeySetDocument } from './signing-keys.js'
import { createRedis, waitForRedis } from '../store/redis-connection.js'
import { StoreUnavailable } from '../store/types.js'

type Log = {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

export interface KeyManagerOptions {
  store: KeySetStore
  ring: KeyRing
  /** The stored version `ring` was loaded from. */
  version: string
  policy: KeyPolicy
  clock: () => number
  log: Log
  /** Take the automatic rotation steps (KEY_ROTATION_INTERVAL > 0; the store must offer a lock). */
  autoRotate: boolean
}

/** How long one replica may hold the rotation lock (a step is one key generation and one write). */
const LOCK_TTL_MS = 30_000

/**
 * Keeps a replica's key ring in step with the stored key set, without a
 * restart (DESIGN §7): every KEYS_RELOAD_INTERVAL it compares the stored
 * version (one cheap read) and reloads on change. With automatic rotation it
 * also takes the steps that are due, under a Redis lock (SET NX PX) so that
 * one replica performs each; the compare-and-set write would make a second
 * performer harmless anyway (it re-reads and finds nothing due).
 */
export class KeyManager {
  readonly #o: KeyManagerOptions
  #version: string
  #activeKid: string
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(options: KeyManagerOptions) {
    this.#o = options
    this.#version = options.version
    this.#activeKid = options.ring.current().active.kid
  }

  get version(): string {
    return this.#version
  }

  /** Re-reads the set if its stored version changed; true when the ring was replaced. */
  async reload(): Promise<boolean> {
    const { store, ring, clock, log } = this.#o
    const version = await store.version()
    if (version === null) {
      // The stored set is gone (a flushed or replaced Redis): write ours back, so that a replica
      // starting now finds the keys every verifier knows instead of seeding an unpublished one.
      const set = ring.set
      if (store instanceof RedisKeySetStore && 'activations' in set) {
        const restored = await store.write(normalizedDocument(set, clock()), null)
        if (restored !== null) {
          this.#version = restored
          log.warn({ event: 'keys.restored', source: store.location, kids: set.keys.map((k) => k.kid) }, 'the stored key set was missing: wrote this replica\'s back')
        }
      }
      return false
    }
    if (version === this.#version) return false
    const got = await store.read()
    if (got === null) return false
    const set = await keySetFromJwks(got.doc, clock())
    ring.replace(set)
    this.#version = got.version
    log.info({ event: 'keys.reloaded', source: store.location, kids: set.keys.map((k) => k.kid), active_kid: ring.current().active.kid }, 'signing key set reloaded')
    return true
  }

  /** One round: reload, note a scheduled activation that took effect, take a due rotation step. */
  async tick(): Promise<void> {
    // Rounds never overlap (a slow Redis must not pile them up).
    if (this.#running) return await this.#running
    this.#running = this.#tick().finally(() => (this.#running = undefined))
    return await this.#running
  }

  async #tick(): Promise<void> {
    const { log } = this.#o
    try {
      await this.reload()
    } catch (err) {
      // Keep signing with the keys we have; the next round tries again.
      log.warn({ event: 'keys.reload_failed', err: (err as Error).message }, 'could not reload the signing key set')
    }
    const active = this.#o.ring.current().active.kid
    if (active !== this.#activeKid) {
      log.info({ event: 'keys.active_changed', kid: active, previous_kid: this.#activeKid }, 'signing with a new key')
      this.#activeKid = active
    }
    if (this.#o.autoRotate) {
      try {
        await this.rotateIfDue()
      } catch (err) {
        log.warn({ event: 'keys.rotation_failed', err: (err as Error).message }, 'automatic key rotation step failed')
      }
    }
  }

  /** Takes the automatic rotation steps that are due now, if this replica gets the lock. Returns how many it took. */
  async rotateIfDue(): Promise<number> {
    const { store, ring, policy, clock, log } = this.#o
    const set = ring.set
    if (!('activations' in set)) return 0
    // Decided first on the local copy, so the lock is only asked for when there is work.
    if (dueRotationAction(set, clock(), policy) === null) return 0
    if (!(store instanceof RedisKeySetStore)) return 0
    const release = await store.lock(LOCK_TTL_MS)
    if (release === null) return 0
    let steps = 0
    try {
      // A few steps at most per round (e.g. two expired keys to remove); the rest wait a round.
      for (let i = 0; i < 3; i++) {
        const applied = await applyKeyChange(store, clock, (s) => dueRotationStep(s, clock(), policy))
        if (applied === null) break
        ring.replace(applied.set)
        this.#version = applied.version
        steps++
        for (const e of applied.events) log.info({ ...e, automatic: true }, 'automatic key rotation step')
      }
    } finally {
      await release()
    }
    return steps
  }

  start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => void this.tick(), this.#o.policy.activationDelay * 1000)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#running
  }
}

export interface SigningKeys {
  ring: KeyRing
  /** Null for the generated development key (nothing to reload). */
  manager: KeyManager | null
  store: KeySetStore | null
  /** Stops reloading and closes the key set's Redis connection, if any. */
  close(): Promise<void>
}

/**
 * The signing keys a configuration calls for (DESIGN §7):
 *  - SIGNING_KEYS_STORE=redis: the encrypted set in Redis (on a connection of its own), seeded
 *    once (from SIGNING_KEYS_FILE when given, else a fresh key) by whichever replica starts first;
 *  - SIGNING_KEYS_FILE: the file, re-read every KEYS_RELOAD_INTERVAL;
 *  - neither: a generated development key.
 * Throws KeySetError when the set cannot be read or is invalid (the service must not start).
 * Call `manager.start()` to begin reloading.
 */
export async function openSigningKeys(config: AuthConfig, log: Log, clock: () => number = Date.now, redisWaitMs = 10_000): Promise<SigningKeys> {
  const policy = keyPolicy(config)
  if (config.signingKeysStore === 'redis') {
    if (config.redis === null || config.signingKeysEncryptionSecret === undefined) throw new KeySetError('SIGNING_KEYS_STORE=redis needs Redis and SIGNING_KEYS_ENCRYPTION_SECRET')
    // Off the request path (start-up and background rounds): a generous command timeout.
    const redis = createRedis({ ...config.redis, connectionName: 'gatehouse-keys', commandTimeoutMs: 5000 })
    try {
      await waitForRedis(redis, redisWaitMs)
      const store = new RedisKeySetStore({ redis, secret: config.signingKeysEncryptionSecret })
      if ((await store.version()) === null) {
        const doc = await seedDocument(config, clock)
        if ((await store.write(doc, null)) !== null) log.info({ event: 'keys.seeded', source: config.signingKeysFile ?? 'generated', kids: doc.keys.map((k) => k.kid) }, 'stored the signing key set in Redis')
      }
      return await open(store, config, policy, log, clock, () => redis.disconnect())
    } catch (err) {
      redis.disconnect()
      if (err instanceof StoreUnavailable) throw new KeySetError(`the key set lives in Redis, which is not reachable: ${err.message}`)
      throw err
    }
  }
  if (config.signingKeysFile !== undefined) {
    const store = new FileKeySetStore(config.signingKeysFile)
    return await open(store, config, policy, log, clock, () => undefined)
  }
  return { ring: new KeyRing(await generateDevKeySet(), clock), manager: null, store: null, close: async () => undefined }
}

async function seedDocument(config: AuthConfig, clock: () => number): Promise<KeySetDocument> {
  if (config.signingKeysFile === undefined) return await newKeySetDocument(clock())
  const got = await new FileKeySetStore(config.signingKeysFile).read()
  if (got === null) throw new KeySetError(`cannot read ${config.signingKeysFile}: ENOENT`)
  return normalizedDocument(await keySetFromJwks(got.doc, clock()), clock())
}

async function open(store: KeySetStore, config: AuthConfig, policy: KeyPolicy, log: Log, clock: () => number, disconnect: () => void): Promise<SigningKeys> {
  const got = await store.read()
  if (got === null) throw new KeySetError(store instanceof FileKeySetStore ? `cannot read ${store.path}: ENOENT` : `there is no key set at ${store.location}`)
  const ring = new KeyRing(await keySetFromJwks(got.doc, clock()), clock)
  const manager = new KeyManager({ store, ring, version: got.version, policy, clock, log, autoRotate: config.keyRotationInterval > 0 })
  return {
    ring,
    manager,
    store,
    async close() {
      await manager.stop()
      disconnect()
    },
  }
}
