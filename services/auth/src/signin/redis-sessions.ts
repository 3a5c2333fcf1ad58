import type { Cluster, Redis } from 'ioredis'
import { DEFAULT_KEY_PREFIX, loginSessionKey, userLoginSessionsKey } from '../store/key-names.js'
import { redisCall as call } from '../store/redis-call.js'
import { StoreUnavailable, type Clock } from '../store/types.js'
import { CLIENT_ID, MAX_CLIENTS, isSessionId, parseToken, secretMatches, newRecord, toSession, byCreation, checkOptions, type LoginSession, type StartSessionInput, type LoginSessionStore, type SessionStoreOptions, type Stored } from './sessions.js'

export interface RedisLoginSessionStoreOptions extends SessionStoreOptions {
  redis: Redis | Cluster
  keyPrefix?: string
}

/**
 * Records a use in one step (the record is JSON; a read-modify-write from Node could lose a
 * concurrent one): last use, and the client appended to the space-separated list unless present.
 * KEEPTTL: a use never extends the session.
 */
const RECORD_USE = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, s = pcall(cjson.decode, raw)
if not ok or type(s) ~= 'table' then return 0 end
s.lastUsedAt = tonumber(ARGV[1])
local clients = s.clients
if type(clients) ~= 'string' then clients = '' end
local n = 0
for c in string.gmatch(clients, '%S+') do
  if c == ARGV[2] then n = -1 break end
  n = n + 1
end
if n >= 0 and n < tonumber(ARGV[3]) then
  if clients == '' then clients = ARGV[2] else clients = clients .. ' ' .. ARGV[2] end
end
s.clients = clients
redis.call('SET', KEYS[1], cjson.encode(s), 'KEEPTTL')
return 1
`

/**
 * Sessions in Redis: one JSON string per session with a TTL (PX, relative, so the Redis clock
 * never matters; expiry is decided with the injected clock), and per user a sorted set of the
 * user's session ids scored by their expiry, pruned on every write and expiring with the user's
 * newest session: memory is bounded by live sessions. The two keys live in different Cluster
 * slots and are written by separate commands; a session missing from the index could not be
 * listed or ended by user, so the index is written first. The connection is shared, not owned.
 */
export class RedisLoginSessionStore implements LoginSessionStore {
  readonly #redis: Redis | Cluster
  readonly #ttlMs: number
  readonly #clock: Clock
  readonly #prefix: string

  constructor(options: RedisLoginSessionStoreOptions) {
    const { ttlMs, clock } = checkOptions(options)
    this.#redis = options.redis
    this.#ttlMs = ttlMs
    this.#clock = clock
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
  }

  async start(input: StartSessionInput): Promise<{ session: LoginSession; token: string }> {
    const now = this.#clock()
    const previous = input.reuseId !== undefined ? await this.#read(input.reuseId) : null
    if (previous !== null && previous.userId !== input.userId) await this.end(input.reuseId!)
    for (let attempt = 0; attempt < 3; attempt++) {
      const rec = newRecord(input, now, this.#ttlMs, previous)
      const key = loginSessionKey(rec.id, this.#prefix)
      const value = JSON.stringify(rec.stored)
      const index = userLoginSessionsKey(input.userId, this.#prefix)
      await call('start', () =>
        this.#redis.multi().zremrangebyscore(index, '-inf', now).zadd(index, rec.stored.expiresAt, rec.id).pexpire(index, this.#ttlMs).exec().then(failedExec),
      )
      // A re-keyed session overwrites its own record; a new one must not collide with another.
      const ok = await call('start', () =>
        input.reuseId === undefined ? this.#redis.set(key, value, 'PX', this.#ttlMs, 'NX') : this.#redis.set(key, value, 'PX', this.#ttlMs),
      )
      if (ok === 'OK') return { session: toSession(rec.id, rec.stored), token: `${rec.id}.${rec.secret}` }
    }
    throw new StoreUnavailable('redis: could not allocate a session id')
  }

  async resolve(token: string): Promise<LoginSession | null> {
    const parsed = parseToken(token)
    if (parsed === null) return null
    const stored = await this.#read(parsed.id)
    return stored !== null && secretMatches(stored, parsed.secret) ? toSession(parsed.id, stored) : null
  }

  async get(id: string): Promise<LoginSession | null> {
    const stored = await this.#read(id)
    return stored === null ? null : toSession(id, stored)
  }

  async end(id: string): Promise<LoginSession | null> {
    if (!isSessionId(id)) return null
    const raw = await call('end', () => this.#redis.getdel(loginSessionKey(id, this.#prefix)))
    const stored = decode(raw)
    if (stored === null) return null
    await call('end', () => this.#redis.zrem(userLoginSessionsKey(stored.userId, this.#prefix), id))
    return this.#clock() >= stored.expiresAt ? null : toSession(id, stored)
  }

  async recordUse(id: string, clientId: string): Promise<void> {
    if (!isSessionId(id) || !CLIENT_ID.test(clientId)) return
    await call('recordUse', () => this.#redis.eval(RECORD_USE, 1, loginSessionKey(id, this.#prefix), String(this.#clock()), clientId, String(MAX_CLIENTS)))
  }

  async listByUser(userId: string): Promise<LoginSession[]> {
    const index = userLoginSessionsKey(userId, this.#prefix)
    const ids = (await call('listByUser', () => this.#redis.zrange(index, 0, -1))).filter(isSessionId)
    // One GET per session (they live in different Cluster slots), sent together.
    const found = await Promise.all(ids.map(async (id) => [id, await this.#read(id)] as const))
    const live: LoginSession[] = []
    const dead: string[] = []
    for (const [id, stored] of found) {
      if (stored === null || stored.userId !== userId) dead.push(id)
      else live.push(toSession(id, stored))
    }
    if (dead.length > 0) await call('listByUser', () => this.#redis.zrem(index, ...dead))
    return live.sort(byCreation)
  }

  async endByUser(userId: string): Promise<LoginSession[]> {
    const index = userLoginSessionsKey(userId, this.#prefix)
    const ids = (await call('endByUser', () => this.#redis.zrange(index, 0, -1))).filter(isSessionId)
    const ended = await Promise.all(ids.map((id) => this.end(id)))
    return ended.filter((s): s is LoginSession => s !== null && s.userId === userId).sort(byCreation)
  }

  async #read(id: string): Promise<Stored | null> {
    if (!isSessionId(id)) return null
    const stored = decode(await call('get', () => this.#redis.get(loginSessionKey(id, this.#prefix))))
    return stored === null || this.#clock() >= stored.expiresAt ? null : stored
  }
}

/** A MULTI whose command failed rejects, so redisCall turns it into StoreUnavailable. */
function failedExec(results: [Error | null, unknown][] | null): void {
  if (results === null) throw new Error('transaction aborted')
  for (const [err] of results) if (err) throw err
}

function decode(raw: string | null): Stored | null {
  if (raw === null) return null
  try {
    const v = JSON.parse(raw) as Partial<Stored>
    if (typeof v.userId !== 'string' || typeof v.authTime !== 'number' || typeof v.expiresAt !== 'number' || typeof v.createdAt !== 'number' || typeof v.secretHash !== 'string') {
      return null
    }
    if (v.clients !== undefined && typeof v.clients !== 'string') delete v.clients
    return v as Stored
  } catch {
    return null
  }
}
