/*
 * Over 300 lines: the announcer, the cache and its two pass-through directories belong together;
 * the correctness argument below (announce, drop, acknowledge) spans all of them.
 */
import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { AddClientResult, Client, ClientDirectory, ClientPage } from './clients.js'
import type { ClientConfig } from './config-file.js'
import { DEFAULT_KEY_PREFIX, directoryAckKey, directoryChangesChannel } from '../store/key-names.js'
import type { AddUserResult, ListQuery, NewUser, SetEmailResult, User, UserDirectory, UserPage } from './users.js'

/**
 * Each replica's copy of the client and user records that /token reads on every request, so that
 * a client_credentials request costs no Redis round trip and a refresh-token rotation exactly one
 * (the store's EVALSHA; DESIGN §5), instead of also reading the client and the user.
 *
 * Correctness rests on announcements, not on expiry. Every change made through the Redis
 * directories (the CLI's `clients rotate-secret`, `users disable`, …) is PUBLISHed on a channel;
 * each replica's cache subscribes, drops its copy and acknowledges; the writer waits for as many
 * acknowledgements as PUBLISH reported receivers (bounded). So when `gatehouse clients
 * rotate-secret` returns, no subscribed replica accepts the old secret any more ("the old one
 * stops working at once"). A replica whose subscription is down serves nothing from its copy,
 * and empties it when it subscribes again (it may have missed announcements). Entries also expire
 * after `ttlMs`, which bounds how stale a copy can be should an acknowledgement be lost.
 *
 * In Redis Cluster, PUBLISH counts only the subscribers of the node that received it, so the wait
 * covers those; replicas subscribed elsewhere get the message through the cluster bus a moment
 * later.
 *
 * Only lookups by id are cached (the client of a /token request, the user of a refresh). Logins
 * look users up by name or email and stay uncached: the password KDF dwarfs a round trip.
 */

export interface DirectoryChange {
  kind: 'client' | 'user'
  id: string
}

/** Tells every replica's cache that a record changed (never throws: the change itself is made). */
export interface ChangeAnnouncer {
  announce(change: DirectoryChange): Promise<void>
}

const NONCE = /^[A-Za-z0-9_-]{16,64}$/

export interface AnnouncerOptions {
  keyPrefix?: string
  /** How long to wait for the acknowledgements (default 2 s). */
  timeoutMs?: number
}

/** Announces on Redis and waits until every replica that received the announcement dropped its copy. */
export class RedisChangeAnnouncer implements ChangeAnnouncer {
  readonly #redis: Redis | Cluster
  readonly #prefix: string
  readonly #timeoutMs: number

  constructor(redis: Redis | Cluster, opts: AnnouncerOptions = {}) {
    this.#redis = redis
    this.#prefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#timeoutMs = opts.timeoutMs ?? 2000
  }

  async announce(change: DirectoryChange): Promise<void> {
    const nonce = randomBytes(16).toString('base64url')
    const ackKey = directoryAckKey(nonce, this.#prefix)
    try {
      const receivers = await this.#redis.publish(directoryChangesChannel(this.#prefix), JSON.stringify({ kind: change.kind, id: change.id, ack: nonce }))
      if (receivers <= 0) return
      // A bounded poll of one counter: each receiver increments it once it has dropped its copy.
      const deadline = Date.now() + this.#timeoutMs
      for (let wait = 2; Date.now() < deadline; wait = Math.min(wait * 2, 50)) {
        if (Number((await this.#redis.get(ackKey)) ?? 0) >= receivers) break
        await new Promise((resolve) => setTimeout(resolve, wait))
      }
      await this.#redis.del(ackKey)
    } catch {
      // Redis failed after the change was written: the copies expire within the caches' TTL.
    }
  }
}

/** Announces nothing (the in-memory directories, which no other process shares). */
export const noAnnouncements: ChangeAnnouncer = { announce: async () => undefined }

export interface DirectoryCacheOptions {
  /** The service's Redis connection: a subscriber is duplicated from it; acknowledgements go through it. */
  redis: Redis | Cluster
  /** ms since the epoch (default Date.now). */
  clock?: () => number
  /** Longest life of a copy, ms (default 30 s). */
  ttlMs?: number
  /** Copies kept per kind (default 10,000; the oldest go first). */
  maxEntries?: number
  keyPrefix?: string
}

interface Entry<T> {
  value: T
  expiresAt: number
}

/** Copies of one kind of record, by id; serves nothing unless the subscription is live. */
class Copies<T> {
  readonly #entries = new Map<string, Entry<T>>()
  /** Lookups in flight, shared by concurrent requests for the same id (one round trip for a burst). */
  readonly #loading = new Map<string, Promise<T | null>>()

  constructor(
    private readonly owner: DirectoryCache,
    private readonly o: { ttlMs: number; maxEntries: number; clock: () => number },
  ) {}

  get size(): number {
    return this.#entries.size
  }

  get(id: string, load: () => Promise<T | null>): Promise<T | null> {
    if (!this.owner.live) return load()
    const entry = this.#entries.get(id)
    if (entry !== undefined) {
      if (this.o.clock() < entry.expiresAt) return Promise.resolve(entry.value)
      this.#entries.delete(id)
    }
    const pending = this.#loading.get(id)
    if (pending !== undefined) return pending
    const generation = this.owner.generation
    const p = load().then(
      (value) => {
        if (this.#loading.get(id) === p) this.#loading.delete(id)
        // Keep it only if nothing was announced (nor the subscription lost) while it was read.
        if (value !== null && this.owner.live && this.owner.generation === generation) this.#store(id, value)
        return value
      },
      (err: unknown) => {
        if (this.#loading.get(id) === p) this.#loading.delete(id)
        throw err
      },
    )
    this.#loading.set(id, p)
    return p
  }

  #store(id: string, value: T): void {
    if (this.#entries.size >= this.o.maxEntries && !this.#entries.has(id)) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    this.#entries.set(id, { value, expiresAt: this.o.clock() + this.o.ttlMs })
  }

  delete(id: string): void {
    this.#entries.delete(id)
    // A request arriving after the announcement must not join a lookup that started before it.
    this.#loading.delete(id)
  }

  clear(): void {
    this.#entries.clear()
    this.#loading.clear()
  }
}

export class DirectoryCache {
  readonly #redis: Redis | Cluster
  readonly #channel: string
  readonly #prefix: string
  readonly #clients: Copies<Client>
  readonly #users: Copies<User>
  #sub: Redis | Cluster | undefined
  #live = false
  #generation = 0
  #closed = false

  constructor(opts: DirectoryCacheOptions) {
    this.#redis = opts.redis
    this.#prefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#channel = directoryChangesChannel(this.#prefix)
    const o = { ttlMs: opts.ttlMs ?? 30_000, maxEntries: opts.maxEntries ?? 10_000, clock: opts.clock ?? Date.now }
    this.#clients = new Copies<Client>(this, o)
    this.#users = new Copies<User>(this, o)
  }

  /** Subscribed: copies may be served. */
  get live(): boolean {
    return this.#live
  }

  /** Bumped by every announcement and every loss of the subscription. */
  get generation(): number {
    return this.#generation
  }

  get size(): { clients: number; users: number } {
    return { clients: this.#clients.size, users: this.#users.size }
  }

  /** Opens the subscription (in the background; until it is up, every lookup reads Redis). */
  start(): void {
    if (this.#sub !== undefined || this.#closed) return
    const sub = this.#redis.duplicate()
    this.#sub = sub
    // Connection errors surface as 'close' below; an unhandled 'error' would crash the process.
    sub.on('error', () => undefined)
    sub.on('message', (channel: string, message: string) => this.#onMessage(channel, message))
    sub.on('ready', () => void this.#subscribe(sub))
    sub.on('close', () => this.#down())
    sub.on('end', () => this.#down())
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#down()
    const sub = this.#sub
    this.#sub = undefined
    if (sub !== undefined) await sub.quit().catch(() => sub.disconnect())
  }

  /** Drops a record's copy here (a change made by this process; others hear of it by announcement). */
  invalidate(change: DirectoryChange): void {
    this.#generation++
    if (change.kind === 'client') this.#clients.delete(change.id)
    else this.#users.delete(change.id)
  }

  clients(inner: ClientDirectory): ClientDirectory {
    return new CachedClientDirectory(inner, this.#clients, this)
  }

  users(inner: UserDirectory): UserDirectory {
    return new CachedUserDirectory(inner, this.#users, this)
  }

  async #subscribe(sub: Redis | Cluster): Promise<void> {
    try {
      await sub.subscribe(this.#channel)
    } catch {
      return // the next 'ready' tries again
    }
    if (this.#closed || sub !== this.#sub) return
    // Announcements made while we were not subscribed are unknown to us: start from nothing.
    this.#generation++
    this.#clients.clear()
    this.#users.clear()
    this.#live = true
  }

  #down(): void {
    this.#live = false
    this.#generation++
    this.#clients.clear()
    this.#users.clear()
  }

  #onMessage(channel: string, message: string): void {
    if (channel !== this.#channel) return
    let change: { kind?: unknown; id?: unknown; ack?: unknown } = {}
    try {
      change = JSON.parse(message) as typeof change
    } catch {
      // fall through: an unreadable announcement drops every copy
    }
    if ((change.kind === 'client' || change.kind === 'user') && typeof change.id === 'string') {
      this.invalidate({ kind: change.kind, id: change.id })
    } else {
      this.#generation++
      this.#clients.clear()
      this.#users.clear()
    }
    if (typeof change.ack === 'string' && NONCE.test(change.ack)) {
      const key = directoryAckKey(change.ack, this.#prefix)
      this.#redis
        .multi()
        .incr(key)
        .pexpire(key, 60_000)
        .exec()
        .catch(() => undefined)
    }
  }
}

class CachedClientDirectory implements ClientDirectory {
  constructor(
    private readonly inner: ClientDirectory,
    private readonly copies: Copies<Client>,
    private readonly cache: DirectoryCache,
  ) {}

  get(clientId: string): Promise<Client | null> {
    return this.copies.get(clientId, () => this.inner.get(clientId))
  }

  add(config: ClientConfig): Promise<AddClientResult> {
    return this.inner.add(config)
  }

  list(query?: ListQuery): Promise<ClientPage> {
    return this.inner.list(query)
  }

  async rotateSecret(clientId: string, secretHash: string): Promise<Client | null> {
    const r = await this.inner.rotateSecret(clientId, secretHash)
    this.cache.invalidate({ kind: 'client', id: clientId })
    return r
  }

  async delete(clientId: string): Promise<Client | null> {
    const r = await this.inner.delete(clientId)
    this.cache.invalidate({ kind: 'client', id: clientId })
    return r
  }
}

class CachedUserDirectory implements UserDirectory {
  readonly addMany?: (inputs: readonly NewUser[]) => Promise<AddUserResult[]>

  constructor(
    private readonly inner: UserDirectory,
    private readonly copies: Copies<User>,
    private readonly cache: DirectoryCache,
  ) {
    // Only where the inner directory has it (an import then falls back to one add per user).
    if (inner.addMany) this.addMany = (inputs) => inner.addMany!(inputs)
  }

  findByUsername(username: string): Promise<User | null> {
    return this.inner.findByUsername(username)
  }

  findByEmail(email: string): Promise<User | null> {
    return this.inner.findByEmail(email)
  }

  findById(id: string): Promise<User | null> {
    return this.copies.get(id, () => this.inner.findById(id))
  }

  add(input: NewUser): Promise<AddUserResult> {
    return this.inner.add(input)
  }

  list(query?: ListQuery): Promise<UserPage> {
    return this.inner.list(query)
  }

  setPassword(id: string, passwordHash: string): Promise<User | null> {
    return this.#changed(id, this.inner.setPassword(id, passwordHash))
  }

  setDisabled(id: string, disabled: boolean): Promise<User | null> {
    return this.#changed(id, this.inner.setDisabled(id, disabled))
  }

  setRoles(id: string, roles: readonly string[]): Promise<User | null> {
    return this.#changed(id, this.inner.setRoles(id, roles))
  }

  delete(id: string): Promise<User | null> {
    return this.#changed(id, this.inner.delete(id))
  }

  async setEmail(id: string, email: string | null): Promise<SetEmailResult> {
    const r = await this.inner.setEmail(id, email)
    this.cache.invalidate({ kind: 'user', id })
    return r
  }

  async #changed(id: string, done: Promise<User | null>): Promise<User | null> {
    const r = await done
    this.cache.invalidate({ kind: 'user', id })
    return r
  }
}
