/*
 * Over 300 lines: the Redis user and client directories share their Lua scripts, the SCAN pager
 * and the record codecs; splitting them would spread one key layout over several files.
 */
import { Cluster, type Redis } from 'ioredis'
import { clientFromConfig, storedClientConfig, type AddClientResult, type Client, type ClientDirectory, type ClientPage } from './clients.js'
import type { ClientConfig } from './config-file.js'
import { storedClient } from './stored-client.js'
import { redisCall as call } from '../store/redis-call.js'
import { RedisChangeAnnouncer, type ChangeAnnouncer } from './directory-cache.js'
import {
  clientRecordKey,
  clientRecordPattern,
  DEFAULT_KEY_PREFIX,
  userEmailIndexKey,
  userIdIndexKey,
  userRecordKey,
  userRecordPattern,
} from '../store/key-names.js'
import { StoreUnavailable, type Clock } from '../store/types.js'
import {
  canonicalEmail,
  canonicalUsername,
  matchesSearch,
  newUserId,
  type AddUserResult,
  type ListQuery,
  type NewUser,
  type SetEmailResult,
  type User,
  type UserDirectory,
  type UserPage,
} from './users.js'

/**
 * Users and clients in Redis: in production the store, not the config file,
 * is the source of truth (the file only seeds it, seed.ts).
 *
 * A user record is a hash under its lowercased username, so the name is
 * unique by construction (created with one atomic script that refuses an
 * existing key) and a login is one HGETALL. A small id → name index finds a
 * user by `sub` (refresh, admin verbs); every read through it checks that the
 * record still carries that id, so a stale index entry finds nothing. Every
 * script touches one key (no CROSSSLOT in Redis Cluster). Listing walks the
 * keyspace with SCAN (never KEYS), on every master in a Cluster.
 *
 * Emails are unique through a second index, email → id, reserved with SET NX
 * before the record is written (with an expiry, made permanent once the record
 * carries the email), and released when the add fails. A read through it checks
 * that the record still carries that email. A permanent entry whose user no
 * longer carries the email (a crash between two steps) is stale: it finds
 * nothing and is taken over by the next user given that email; an entry that
 * still expires belongs to an add in flight and refuses the email.
 */

/** KEYS[1] record; ARGV: now, then field/value pairs. 1 when created, 0 when the key exists. */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'created_at', ARGV[1], 'updated_at', ARGV[1], unpack(ARGV, 2))
return 1
`

/** KEYS[1] user record; ARGV[1] id, ARGV[2] now, then field/value pairs. The record after, or nil. */
const UPDATE_USER = `
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2], unpack(ARGV, 3))
return redis.call('HGETALL', KEYS[1])
`

/** KEYS[1] record; ARGV[1] the id field it must have ('' = any). The record removed, or nil. */
const DELETE_IF = `
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return h
`

/** KEYS[1] index key; ARGV[1] expected value. Deletes the key only if it still holds that value. */
const DELETE_IF_VALUE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

/** KEYS[1] user record; ARGV[1] id, ARGV[2] now, ARGV[3] email ('' removes it). {previous email or '', record after}, or nil. */
const SET_USER_EMAIL = `
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return false end
local old = redis.call('HGET', KEYS[1], 'email') or ''
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'email') else redis.call('HSET', KEYS[1], 'email', ARGV[3]) end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
return {old, redis.call('HGETALL', KEYS[1])}
`

/** KEYS[1] index key; ARGV[1] expected value, ARGV[2] new value, ARGV[3] ms to live. 1 when swapped. */
const SWAP_IF_VALUE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`

/** KEYS[1] index key; ARGV[1] expected value. Makes the key permanent if it still holds that value. */
const PERSIST_IF_VALUE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PERSIST', KEYS[1]) end
return 0
`

/** How long an email reservation of an add or set-email in flight lives before it is made permanent. */
const EMAIL_RESERVATION_MS = 60_000

/** KEYS[1] client record; ARGV[1] now, ARGV[2] secret hash. 1 when updated, 0 when absent. */
const SET_CLIENT_SECRET = `
if redis.call('HEXISTS', KEYS[1], 'config') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'secret_hash', ARGV[2], 'updated_at', ARGV[1])
return 1
`

function flatToHash(flat: unknown): Record<string, string> {
  if (!Array.isArray(flat)) throw new StoreUnavailable('redis: unexpected reply')
  const h: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) h[String(flat[i])] = String(flat[i + 1])
  return h
}

// ---------------------------------------------------------------------------------------------
// SCAN, standalone or Cluster

/**
 * One page of keys matching `pattern`. The cursor is `<node>:<scan cursor>`:
 * a Cluster is scanned master by master (ordered by address, so a cursor
 * stays meaningful between calls); a standalone server is node 0. `limit` is
 * a hint, as SCAN's COUNT is.
 */
export async function scanPage(redis: Redis | Cluster, pattern: string, cursor: string | undefined, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
  const nodes: Redis[] = redis instanceof Cluster
    ? [...redis.nodes('master')].sort((a, b) => addr(a).localeCompare(addr(b)))
    : [redis]
  let node = 0
  let scan = '0'
  if (cursor !== undefined) {
    const m = /^(\d{1,4}):(\d{1,20})$/.exec(cursor)
    if (!m) throw new RangeError('invalid cursor')
    node = Number(m[1])
    scan = m[2]!
  }
  const keys: string[] = []
  while (node < nodes.length && keys.length < limit) {
    const [next, found] = await call('scan', () => nodes[node]!.scan(scan, 'MATCH', pattern, 'COUNT', Math.max(10, limit)))
    keys.push(...found)
    if (next === '0') {
      node++
      scan = '0'
    } else {
      scan = next
    }
  }
  return { keys, cursor: node < nodes.length ? `${node}:${scan}` : null }
}

/**
 * One page of decoded records whose keys match `pattern`, keeping those `keep` accepts. With a
 * search, SCAN goes on until the page has `limit` matches or the keyspace ends.
 */
async function scanRecords<T>(
  redis: Redis | Cluster,
  pattern: string,
  query: ListQuery,
  op: string,
  decode: (h: Record<string, string>) => T | null,
  keep: (record: T) => boolean,
): Promise<{ items: T[]; cursor: string | null }> {
  const limit = Math.max(1, Math.min(query.limit ?? 100, 1000))
  const items: T[] = []
  let cursor: string | null | undefined = query.cursor
  do {
    const page = await scanPage(redis, pattern, cursor, limit)
    const records = await Promise.all(page.keys.map((k) => call(op, () => redis.hgetall(k))))
    for (const r of records.map(decode)) if (r !== null && keep(r)) items.push(r)
    cursor = page.cursor
  } while (cursor !== null && items.length < limit)
  return { items, cursor }
}

function addr(r: Redis): string {
  return `${r.options.host ?? ''}:${String(r.options.port ?? '')}`
}

// ---------------------------------------------------------------------------------------------
// Users

export interface RedisDirectoryOptions {
  redis: Redis | Cluster
  clock?: Clock
  keyPrefix?: string
  /**
   * Tells every replica's directory cache that a record changed, and waits until they dropped
   * their copies (directory-cache.ts). Default: announced on `redis`.
   */
  changes?: ChangeAnnouncer
}

export class RedisUserDirectory implements UserDirectory {
  readonly #redis: Redis | Cluster
  readonly #clock: Clock
  readonly #prefix: string
  readonly #changes: ChangeAnnouncer

  constructor(opts: RedisDirectoryOptions) {
    this.#redis = opts.redis
    this.#clock = opts.clock ?? Date.now
    this.#prefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#changes = opts.changes ?? new RedisChangeAnnouncer(opts.redis, { keyPrefix: this.#prefix })
  }

  async findByUsername(username: string): Promise<User | null> {
    if (typeof username !== 'string' || username.length === 0 || username.length > 256) return null
    const h = await call('users.find', () => this.#redis.hgetall(userRecordKey(canonicalUsername(username), this.#prefix)))
    return toUser(h)
  }

  async findByEmail(email: string): Promise<User | null> {
    if (typeof email !== 'string' || email.length === 0 || email.length > 254) return null
    const canonical = canonicalEmail(email)
    const id = await call('users.find', () => this.#redis.get(userEmailIndexKey(canonical, this.#prefix)))
    if (id === null) return null
    const user = await this.findById(id)
    return user !== null && user.email !== undefined && canonicalEmail(user.email) === canonical ? user : null
  }

  async findById(id: string): Promise<User | null> {
    const name = await this.#nameOf(id)
    if (name === null) return null
    const user = toUser(await call('users.find', () => this.#redis.hgetall(userRecordKey(name, this.#prefix))))
    return user?.id === id ? user : null
  }

  async add(input: NewUser): Promise<AddUserResult> {
    const name = canonicalUsername(input.username)
    const id = input.id ?? newUserId()
    const email = input.email === undefined ? undefined : canonicalEmail(input.email)
    const now = String(this.#clock())
    const fields = [
      'id', id,
      'username', input.username,
      'password_hash', input.passwordHash,
      'roles', JSON.stringify(input.roles ?? []),
      'claims', JSON.stringify(input.claims ?? {}),
      'disabled', input.disabled ? '1' : '0',
    ]
    if (input.email !== undefined) fields.push('email', input.email)
    // The email first: two adds of one email race for its index, and exactly one gets it.
    const reserved = email === undefined ? 'none' : await this.#reserveEmail(email, id)
    if (reserved === 'taken') return { status: 'exists' }
    // The id index next: a record is never findable by name without being findable by id. An index
    // entry left behind by a lost race (or a crash) points at a record with another id: harmless.
    const indexKey = userIdIndexKey(id, this.#prefix)
    if (!(await this.#claimId(indexKey, id, name))) {
      if (reserved === 'new') await this.#releaseEmail(email!, id)
      return { status: 'exists' }
    }
    const created = await call('users.add', () => this.#redis.eval(CREATE, 1, userRecordKey(name, this.#prefix), now, ...fields))
    if (created !== 1) {
      const holder = await call('users.add', () => this.#redis.hget(userRecordKey(name, this.#prefix), 'id'))
      if (holder !== id) await call('users.add', () => this.#redis.eval(DELETE_IF_VALUE, 1, indexKey, name))
      if (reserved === 'new') await this.#releaseEmail(email!, id)
      return { status: 'exists' }
    }
    if (input.id !== undefined && (await call('users.add', () => this.#redis.get(indexKey))) !== name) {
      // A concurrent add of the same given id under another name took the index: one subject, one user.
      await call('users.add', () => this.#redis.eval(DELETE_IF, 1, userRecordKey(name, this.#prefix), id))
      if (reserved === 'new') await this.#releaseEmail(email!, id)
      return { status: 'exists' }
    }
    if (email !== undefined) await call('users.add', () => this.#redis.eval(PERSIST_IF_VALUE, 1, userEmailIndexKey(email, this.#prefix), id))
    const user = await this.findById(id)
    if (user === null) throw new StoreUnavailable('redis: the user just added is missing')
    return { status: 'created', user }
  }

  async list(query: ListQuery = {}): Promise<UserPage> {
    const { items: users, cursor } = await scanRecords(this.#redis, userRecordPattern(this.#prefix), query, 'users.list', toUser, (u) => matchesSearch(query.search, u.username, u.email))
    users.sort((a, b) => (a.username.toLowerCase() < b.username.toLowerCase() ? -1 : 1))
    return { users, cursor }
  }

  async setPassword(id: string, passwordHash: string): Promise<User | null> {
    return await this.#update(id, ['password_hash', passwordHash])
  }

  async setDisabled(id: string, disabled: boolean): Promise<User | null> {
    return await this.#update(id, ['disabled', disabled ? '1' : '0'])
  }

  async setRoles(id: string, roles: readonly string[]): Promise<User | null> {
    return await this.#update(id, ['roles', JSON.stringify(roles)])
  }

  async setEmail(id: string, email: string | null): Promise<SetEmailResult> {
    const name = await this.#nameOf(id)
    if (name === null) return { status: 'not_found' }
    const canonical = email === null ? undefined : canonicalEmail(email)
    const reserved = canonical === undefined ? 'none' : await this.#reserveEmail(canonical, id)
    if (reserved === 'taken') return { status: 'exists' }
    const after = await call('users.update', () => this.#redis.eval(SET_USER_EMAIL, 1, userRecordKey(name, this.#prefix), id, String(this.#clock()), email ?? ''))
    if (after === null) {
      if (reserved === 'new') await this.#releaseEmail(canonical!, id)
      return { status: 'not_found' }
    }
    if (!Array.isArray(after) || typeof after[0] !== 'string') throw new StoreUnavailable('redis: unexpected reply')
    if (canonical !== undefined) await call('users.update', () => this.#redis.eval(PERSIST_IF_VALUE, 1, userEmailIndexKey(canonical, this.#prefix), id))
    const previous = after[0] === '' ? undefined : canonicalEmail(after[0])
    if (previous !== undefined && previous !== canonical) await this.#releaseEmail(previous, id)
    await this.#changes.announce({ kind: 'user', id })
    const user = toUser(flatToHash(after[1]))
    if (user === null) throw new StoreUnavailable('redis: unexpected reply')
    return { status: 'updated', user }
  }

  async delete(id: string): Promise<User | null> {
    const name = await this.#nameOf(id)
    if (name === null) return null
    const removed = await call('users.delete', () => this.#redis.eval(DELETE_IF, 1, userRecordKey(name, this.#prefix), id))
    if (removed === null) return null
    await call('users.delete', () => this.#redis.eval(DELETE_IF_VALUE, 1, userIdIndexKey(id, this.#prefix), name))
    const user = toUser(flatToHash(removed))
    if (user?.email !== undefined) await this.#releaseEmail(canonicalEmail(user.email), id)
    await this.#changes.announce({ kind: 'user', id })
    return user
  }

  /**
   * Claims the email index for `id`: `new` (reserved now, expiring until made permanent), `held`
   * (it already names `id`), or `taken` (another user carries the email, or an add of it is in
   * flight). A permanent entry whose user does not carry the email is stale and taken over.
   */
  async #reserveEmail(canonical: string, id: string): Promise<'new' | 'held' | 'taken'> {
    const key = userEmailIndexKey(canonical, this.#prefix)
    for (let attempt = 0; attempt < 3; attempt++) {
      if ((await call('users.email', () => this.#redis.set(key, id, 'PX', EMAIL_RESERVATION_MS, 'NX'))) === 'OK') return 'new'
      const holder = await call('users.email', () => this.#redis.get(key))
      if (holder === null) continue
      if (holder === id) return 'held'
      if ((await call('users.email', () => this.#redis.pttl(key))) > 0) return 'taken'
      const other = await this.findById(holder)
      if (other?.email !== undefined && canonicalEmail(other.email) === canonical) return 'taken'
      if ((await call('users.email', () => this.#redis.eval(SWAP_IF_VALUE, 1, key, holder, id, EMAIL_RESERVATION_MS))) === 1) return 'new'
    }
    return 'taken'
  }

  /**
   * Points the id index at `name`. A fresh random id is simply written; a given id (seeding, an
   * import that keeps subjects) must not be another user's: false when a record under another
   * name carries it. An entry whose record does not carry the id is stale and overwritten.
   */
  async #claimId(indexKey: string, id: string, name: string): Promise<boolean> {
    if ((await call('users.add', () => this.#redis.set(indexKey, name, 'NX'))) === 'OK') return true
    const holder = await call('users.add', () => this.#redis.get(indexKey))
    if (holder !== null && holder !== name) {
      const holderId = await call('users.add', () => this.#redis.hget(userRecordKey(holder, this.#prefix), 'id'))
      if (holderId === id) return false
    }
    await call('users.add', () => this.#redis.set(indexKey, name))
    return true
  }

  async #releaseEmail(canonical: string, id: string): Promise<void> {
    await call('users.email', () => this.#redis.eval(DELETE_IF_VALUE, 1, userEmailIndexKey(canonical, this.#prefix), id))
  }

  async #nameOf(id: string): Promise<string | null> {
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) return null
    return await call('users.find', () => this.#redis.get(userIdIndexKey(id, this.#prefix)))
  }

  async #update(id: string, fields: string[]): Promise<User | null> {
    const name = await this.#nameOf(id)
    if (name === null) return null
    const after = await call('users.update', () => this.#redis.eval(UPDATE_USER, 1, userRecordKey(name, this.#prefix), id, String(this.#clock()), ...fields))
    if (after === null) return null
    await this.#changes.announce({ kind: 'user', id })
    return toUser(flatToHash(after))
  }
}

/** A record as a User; null for an empty hash; StoreUnavailable for a malformed one. */
function toUser(h: Record<string, string>): User | null {
  if (Object.keys(h).length === 0) return null
  const { id, username, password_hash: passwordHash } = h
  if (id === undefined || username === undefined || passwordHash === undefined) throw new StoreUnavailable('redis: malformed user record')
  let roles: unknown
  let claims: unknown
  try {
    roles = JSON.parse(h.roles ?? '[]')
    claims = JSON.parse(h.claims ?? '{}')
  } catch {
    throw new StoreUnavailable('redis: malformed user record')
  }
  if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string') || typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new StoreUnavailable('redis: malformed user record')
  }
  return { id, username, email: h.email, passwordHash, roles: roles as string[], claims: claims as Record<string, unknown>, disabled: h.disabled === '1' }
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * A client record is a hash: `config` (the config-file form, JSON, without
 * any secret) and `secret_hash` (`sha256:<base64url>`, absent for public and
 * private_key_jwt clients), so rotating a secret touches one field.
 */
export class RedisClientDirectory implements ClientDirectory {
  readonly #redis: Redis | Cluster
  readonly #clock: Clock
  readonly #prefix: string
  readonly #changes: ChangeAnnouncer

  constructor(opts: RedisDirectoryOptions) {
    this.#redis = opts.redis
    this.#clock = opts.clock ?? Date.now
    this.#prefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#changes = opts.changes ?? new RedisChangeAnnouncer(opts.redis, { keyPrefix: this.#prefix })
  }

  async get(clientId: string): Promise<Client | null> {
    if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 256) return null
    return toClient(await call('clients.get', () => this.#redis.hgetall(clientRecordKey(clientId, this.#prefix))))
  }

  async add(config: ClientConfig): Promise<AddClientResult> {
    const stored = storedClientConfig(config)
    const { client_secret_hash: secretHash, ...rest } = stored
    const fields = ['config', JSON.stringify(rest)]
    if (secretHash !== undefined) fields.push('secret_hash', secretHash)
    const key = clientRecordKey(config.client_id, this.#prefix)
    const created = await call('clients.add', () => this.#redis.eval(CREATE, 1, key, String(this.#clock()), ...fields))
    if (created !== 1) return { status: 'exists' }
    return { status: 'created', client: clientFromConfig(stored) }
  }

  async list(query: ListQuery = {}): Promise<ClientPage> {
    const { items: clients, cursor } = await scanRecords(this.#redis, clientRecordPattern(this.#prefix), query, 'clients.list', toClient, (c) => matchesSearch(query.search, c.id, c.name))
    clients.sort((a, b) => (a.id < b.id ? -1 : 1))
    return { clients, cursor }
  }

  async rotateSecret(clientId: string, secretHash: string): Promise<Client | null> {
    const key = clientRecordKey(clientId, this.#prefix)
    const ok = await call('clients.rotate', () => this.#redis.eval(SET_CLIENT_SECRET, 1, key, String(this.#clock()), secretHash))
    if (ok !== 1) return null
    await this.#changes.announce({ kind: 'client', id: clientId })
    return await this.get(clientId)
  }

  async delete(clientId: string): Promise<Client | null> {
    const removed = await call('clients.delete', () => this.#redis.eval(DELETE_IF, 1, clientRecordKey(clientId, this.#prefix), ''))
    if (removed === null) return null
    await this.#changes.announce({ kind: 'client', id: clientId })
    return toClient(flatToHash(removed))
  }
}

function toClient(h: Record<string, string>): Client | null {
  const c = clientConfigFromRecord(h)
  return c === null ? null : clientFromConfig(c)
}

/** A client record's config-file form (with its secret hash), as `gatehouse db import-redis` copies it. */
export function clientConfigFromRecord(h: Record<string, string>): ClientConfig | null {
  if (Object.keys(h).length === 0) return null
  let doc: unknown
  try {
    doc = JSON.parse(h.config ?? '')
  } catch {
    throw new StoreUnavailable('redis: malformed client record')
  }
  return storedClient(doc, h.secret_hash, 'redis')
}
