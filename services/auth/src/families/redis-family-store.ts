// Over 300 lines on purpose: every step of the Redis store (create, rotate, revoke, the indexes,
// the Cluster outbox) and the hash layout they share stay in one file, next to each other, so a
// change to one is read against the others and against the Lua scripts (redis-scripts.ts).
import type { Cluster, Redis } from 'ioredis'
import { encodeRevocation, RECENT_REVOCATIONS_KEY, REVOCATION_CHANNEL } from '@gatehouse/service-kit'
import { familyKeys, isFamilyId, type FamilyKeys } from '../store/key-names.js'
import { assertClock, assertPolicy, isExpired, lookupByToken, newFamily } from './policy.js'
import { RefreshTokenCodec } from './refresh-token-codec.js'
import { CREATE_SCRIPT, INDEX_ADD_SCRIPT, REVOKE_SCRIPT, ROTATE_SCRIPT } from './redis-scripts.js'
import { RevocationOutbox, type AnnouncementEvent } from './revocation-outbox.js'
import { writeRecentRevocation } from './revocation-publisher.js'
import { redisCall } from '../store/redis-call.js'
import {
  type Family,
  type FamilyInput,
  type FamilyPolicy,
  type FamilyStore,
  type RevokeReason,
  type RotateOutcome,
  type RotateContext,
} from './types.js'
import { StoreUnavailable, type Clock } from '../store/types.js'

export interface RedisFamilyStoreOptions {
  /** A standalone/Sentinel `Redis` or a `Cluster` (see createRedis). */
  redis: Redis | Cluster
  codec: RefreshTokenCodec
  policy: FamilyPolicy
  clock?: Clock
  /** Prefix of every key name (default `gatehouse:`). */
  keyPrefix?: string
  /** close() quits the connection (default true: the store owns the connection it is given). */
  ownsConnection?: boolean
  /**
   * Seconds an announced revocation stays in the recent set (ACCESS_TOKEN_TTL: the family's
   * access tokens are dead by then anyway). Default 900, the default ACCESS_TOKEN_TTL.
   */
  accessTokenTtlS?: number
  /**
   * The clock of the reuse-grace window: `redis` (TIME at execution: a command that waited in a
   * stalled Redis cannot turn the client's own retry into reuse) or `caller` (the injected
   * clock, for tests that drive the window). Default: `redis` on the real clock (no clock, or
   * Date.now), `caller` with any other clock.
   */
  graceClock?: 'redis' | 'caller'
  /** Cluster only: what the retrying outbox of the recent set reports (metrics, logs). */
  onAnnouncement?: (event: AnnouncementEvent) => void
}

type ScriptFn = (key: string, ...args: (string | number)[]) => Promise<unknown>
/** A script whose first argument is its number of keys (the recent set is a key only outside Cluster). */
type KeysScriptFn = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<unknown>

/** The commands defineCommand adds (EVALSHA, falling back to EVAL on NOSCRIPT). */
interface FamilyScripts {
  gatehouseFamilyRotate: KeysScriptFn
  gatehouseFamilyCreate: ScriptFn
  gatehouseFamilyRevoke: KeysScriptFn
  gatehouseFamilyIndexAdd: ScriptFn
}

/** numberOfKeys: 1, or undefined when the caller passes it (the scripts that may record a revocation). */
const SCRIPTS: Record<keyof FamilyScripts, { lua: string; numberOfKeys?: number }> = {
  gatehouseFamilyRotate: { lua: ROTATE_SCRIPT },
  gatehouseFamilyCreate: { lua: CREATE_SCRIPT, numberOfKeys: 1 },
  gatehouseFamilyRevoke: { lua: REVOKE_SCRIPT },
  gatehouseFamilyIndexAdd: { lua: INDEX_ADD_SCRIPT, numberOfKeys: 1 },
}

const ROTATE_STATUSES = new Set(['rotated', 'retried', 'reused', 'not_found', 'revoked', 'expired', 'client_mismatch', 'key_mismatch', 'stale'])

/**
 * Refresh-token families in Redis (standalone, Sentinel or Cluster), DESIGN §5.
 *
 * One hash per family, `<prefix>fam:{<id>}`, holding the current generation only (see
 * refresh-token-codec.ts), so its size does not change with rotations; its TTL is the family's
 * remaining life (idle expiry capped by the absolute one). A rotation is a single EVALSHA.
 * Per-user and per-session sets of family ids (other slots, separate commands) serve logout and
 * revocation; they carry TTLs and are pruned of dead members when read.
 *
 * A revocation (reuse, revoke, revokeByUser, revokeBySession) is announced to resource services
 * (DESIGN §6) by the script that revokes: recent set + PUBLISH in standalone and Sentinel; in
 * Cluster PUBLISH in the script and the recent set through a retrying outbox (redis-scripts.ts).
 *
 * Every Redis failure surfaces as StoreUnavailable; protocol outcomes are values.
 */
export class RedisFamilyStore implements FamilyStore {
  readonly #redis: Redis | Cluster
  readonly #scripts: FamilyScripts
  readonly #codec: RefreshTokenCodec
  readonly #policy: FamilyPolicy
  readonly #clock: Clock
  readonly #keys: FamilyKeys
  readonly #ownsConnection: boolean
  readonly #accessTokenTtlS: number
  readonly #graceClock: 'redis' | 'caller'
  /** Cluster only: the recent set is written after the script (another slot). */
  readonly #outbox: RevocationOutbox | undefined
  #closed = false

  constructor(options: RedisFamilyStoreOptions) {
    if (options?.redis === undefined || typeof options.redis.defineCommand !== 'function') {
      throw new TypeError('redis must be an ioredis Redis or Cluster')
    }
    if (!(options.codec instanceof RefreshTokenCodec)) throw new TypeError('codec must be a RefreshTokenCodec')
    this.#redis = options.redis
    this.#codec = options.codec
    this.#policy = assertPolicy(options.policy)
    const clock = options.clock ?? Date.now
    assertClock(clock)
    this.#clock = clock
    this.#keys = familyKeys(options.keyPrefix)
    this.#ownsConnection = options.ownsConnection ?? true
    const ttl = options.accessTokenTtlS ?? 900
    if (!Number.isSafeInteger(ttl) || ttl < 1) throw new TypeError('accessTokenTtlS must be an integer >= 1 (s)')
    this.#accessTokenTtlS = ttl
    const graceClock = options.graceClock ?? (options.clock === undefined || options.clock === Date.now ? 'redis' : 'caller')
    if (graceClock !== 'redis' && graceClock !== 'caller') throw new TypeError("graceClock must be 'redis' or 'caller'")
    this.#graceClock = graceClock
    if (this.#redis.isCluster) {
      this.#outbox = new RevocationOutbox({
        write: (sid, exp) => this.#writeRecent(sid, exp),
        clock: this.#clock,
        ...(options.onAnnouncement === undefined ? {} : { onEvent: options.onAnnouncement }),
      })
    }
    for (const [name, { lua, numberOfKeys }] of Object.entries(SCRIPTS)) {
      this.#redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { numberOfKeys, lua })
    }
    this.#scripts = this.#redis as unknown as FamilyScripts
  }

  async create(input: FamilyInput): Promise<{ family: Family; refreshToken: string }> {
    const now = this.#clock()
    const ttl = Math.min(this.#policy.absoluteTtlMs, this.#policy.idleTtlMs)
    for (let attempt = 0; attempt < 3; attempt++) {
      const family = newFamily(RefreshTokenCodec.newFamilyId(), input, this.#policy, now)
      const key = this.#keys.family(family.id)
      const created = await redisCall('create', () =>
        this.#scripts.gatehouseFamilyCreate(key, ttl, ...toFields(family)),
      )
      if (created !== 1) continue // a 128-bit id collision: draw again
      // The family exists before it is indexed: an index member whose key is missing is then
      // always dead (safe to prune). If indexing fails, undo, so no family escapes logout.
      try {
        await this.#index(family)
      } catch (err) {
        await this.#redis.del(key).catch(() => undefined)
        throw err
      }
      return { family, refreshToken: this.#codec.mint(family.id, 0) }
    }
    throw new StoreUnavailable('redis: could not allocate a family id')
  }

  async rotate(refreshToken: string, ctx: RotateContext): Promise<RotateOutcome> {
    // A forged token never reaches Redis, so it can neither revoke nor probe a family.
    const parsed = this.#codec.parse(refreshToken)
    if (parsed === null) return { status: 'not_found' }
    const now = this.#clock()
    const reply = await redisCall('rotate', () =>
      this.#scripts.gatehouseFamilyRotate(
        ...this.#keysWithRecent(parsed.familyId),
        now,
        parsed.generation,
        ctx.clientId,
        this.#policy.idleTtlMs,
        this.#policy.reuseGraceMs,
        this.#graceClock,
        ...this.#announcement(parsed.familyId, now),
        ctx.jkt ?? '',
        ctx.bind === true ? '1' : '',
      ),
    )
    if (!Array.isArray(reply) || typeof reply[0] !== 'string' || !ROTATE_STATUSES.has(reply[0])) {
      throw new StoreUnavailable('redis: unexpected reply from the rotate script')
    }
    const status = reply[0] as RotateOutcome['status']
    if (status === 'not_found' || status === 'expired' || status === 'stale') return { status }
    const family = toFamily(parsed.familyId, reply[1])
    switch (status) {
      case 'rotated':
      case 'retried':
        // The successor is a pure function of (family, current generation): a retry gets the same one.
        return { status, family, refreshToken: this.#codec.mint(family.id, family.generation) }
      case 'reused':
        this.#afterScriptAnnounced(family.id, now)
        return { status, family }
      case 'revoked':
      case 'client_mismatch':
      case 'key_mismatch':
        return { status, family }
    }
  }

  async get(familyId: string): Promise<Family | null> {
    if (!isFamilyId(familyId)) return null
    const key = this.#keys.family(familyId)
    const hash = await redisCall('get', () => this.#redis.hgetall(key))
    const family = hashToFamily(familyId, hash)
    if (family === null || isExpired(family, this.#policy, this.#clock())) return null
    return family
  }

  async lookup(refreshToken: string): Promise<{ family: Family; current: boolean } | null> {
    return lookupByToken(this.#codec, (id) => this.get(id), refreshToken)
  }

  async revoke(familyId: string, _reason: RevokeReason): Promise<Family | null> {
    if (!isFamilyId(familyId)) return null
    return this.#revokeOne(familyId, this.#clock())
  }

  async revokeByUser(userId: string, _reason: RevokeReason): Promise<Family[]> {
    return this.#revokeIndexed(this.#keys.userFamilies(userId))
  }

  async revokeBySession(sessionId: string, _reason: RevokeReason): Promise<Family[]> {
    return this.#revokeIndexed(this.#keys.sessionFamilies(sessionId))
  }

  async listByUser(userId: string): Promise<Family[]> {
    const indexKey = this.#keys.userFamilies(userId)
    const ids = await redisCall('listByUser', () => this.#redis.smembers(indexKey))
    const now = this.#clock()
    const live: Family[] = []
    const dead: string[] = []
    const hashes = await redisCall('listByUser', () =>
      Promise.all(ids.map((id) => (isFamilyId(id) ? this.#redis.hgetall(this.#keys.family(id)) : {}))),
    )
    ids.forEach((id, i) => {
      const family = hashToFamily(id, hashes[i] ?? {})
      if (family === null || family.revoked || isExpired(family, this.#policy, now)) dead.push(id)
      else live.push(family)
    })
    if (dead.length > 0) await redisCall('listByUser', () => this.#redis.srem(indexKey, ...dead))
    return live.sort(byCreation)
  }

  async ping(): Promise<void> {
    await redisCall('ping', () => this.#redis.ping())
  }

  /** Quits the connection if the store owns it (replies pending are awaited); idempotent. */
  async close(): Promise<void> {
    if (this.#outbox !== undefined && !this.#closed) {
      await this.#outbox.drain(1000)
      this.#outbox.close()
    }
    if (!this.#ownsConnection || this.#closed) return
    this.#closed = true
    if (this.#redis.status === 'ready') {
      try {
        await this.#redis.quit()
        return
      } catch {
        // fall through
      }
    }
    // Not connected: stop reconnecting, without waiting (the offline queue is off anyway).
    this.#redis.disconnect()
  }

  /** Cluster: announcements whose recent-set entry is not yet written (see RevocationOutbox). */
  get pendingAnnouncements(): number {
    return this.#outbox?.size ?? 0
  }

  /** Revokes a live family (returned) or announces an already revoked one again (null). */
  async #revokeOne(familyId: string, now: number): Promise<Family | null> {
    const reply = await redisCall('revoke', () =>
      this.#scripts.gatehouseFamilyRevoke(...this.#keysWithRecent(familyId), now, this.#policy.idleTtlMs, ...this.#announcement(familyId, now)),
    )
    if (reply === null) return null
    if (!Array.isArray(reply) || (reply[0] !== 'revoked' && reply[0] !== 'again')) {
      throw new StoreUnavailable('redis: unexpected reply from the revoke script')
    }
    this.#afterScriptAnnounced(familyId, now)
    return reply[0] === 'revoked' ? toFamily(familyId, reply[1]) : null
  }

  /** numkeys and KEYS of a script that may record a revocation: the recent set only outside Cluster. */
  #keysWithRecent(familyId: string): [number, ...string[]] {
    const key = this.#keys.family(familyId)
    return this.#outbox === undefined ? [2, key, RECENT_REVOCATIONS_KEY] : [1, key]
  }

  /** ARGV of announce() in redis-scripts.ts: sid, exp (s), now (s), channel, message. */
  #announcement(familyId: string, now: number): string[] {
    const nowS = Math.floor(now / 1000)
    const exp = nowS + this.#accessTokenTtlS
    return [familyId, String(exp), String(nowS), REVOCATION_CHANNEL, encodeRevocation({ sid: familyId, exp })]
  }

  /** The script PUBLISHed (and, outside Cluster, wrote the recent set); in Cluster queue the set's entry. */
  #afterScriptAnnounced(familyId: string, now: number): void {
    this.#outbox?.add(familyId, Math.floor(now / 1000) + this.#accessTokenTtlS)
  }

  /** The recent set's entry, as announce() in redis-scripts.ts writes it. */
  async #writeRecent(sid: string, exp: number): Promise<void> {
    await redisCall('announce', () => writeRecentRevocation(this.#redis, sid, exp, Math.floor(this.#clock() / 1000)))
  }

  /**
   * Revokes every member of an index set and removes exactly those members (not the set: a
   * family created meanwhile keeps its place). Each revocation is atomic on its own key.
   */
  async #revokeIndexed(indexKey: string): Promise<Family[]> {
    const ids = await redisCall('revokeIndexed', () => this.#redis.smembers(indexKey))
    if (ids.length === 0) return []
    const now = this.#clock()
    const results = await Promise.all(ids.map((id) => (isFamilyId(id) ? this.#revokeOne(id, now) : null)))
    await redisCall('revokeIndexed', () => this.#redis.srem(indexKey, ...ids))
    return results.filter((f): f is Family => f !== null).sort(byCreation)
  }

  async #index(family: Family): Promise<void> {
    // The sets must outlive their longest-lived member: a new family lives at most absoluteTtlMs.
    const ttl = this.#policy.absoluteTtlMs
    const writes = [
      this.#scripts.gatehouseFamilyIndexAdd(this.#keys.userFamilies(family.userId), family.id, ttl),
    ]
    if (family.sessionId !== undefined) {
      writes.push(this.#scripts.gatehouseFamilyIndexAdd(this.#keys.sessionFamilies(family.sessionId), family.id, ttl))
    }
    await redisCall('create', () => Promise.all(writes))
  }
}

function toFields(family: Family): string[] {
  const fields = [
    'userId', family.userId,
    'clientId', family.clientId,
    'scope', family.scope,
    'authTime', String(family.authTime),
    'createdAt', String(family.createdAt),
    'expiresAt', String(family.expiresAt),
    'lastUsedAt', String(family.lastUsedAt),
    'generation', String(family.generation),
    'rotatedAt', '0',
    'revoked', '0',
  ]
  if (family.sessionId !== undefined) fields.push('sessionId', family.sessionId)
  // Resource indicators are absolute URIs without spaces (tokens/resource-indicators.ts).
  if (family.resources !== undefined) fields.push('resources', family.resources.join(' '))
  if (family.jkt !== undefined) fields.push('jkt', family.jkt)
  // amr values are short tokens without spaces (RFC 8176 §2; signin/sessions.ts AMR_VALUE).
  if (family.amr !== undefined) fields.push('amr', family.amr.join(' '))
  if (family.acrInAccessTokens === true) fields.push('atAcr', '1')
  return fields
}

/** A script's HGETALL reply (a flat field/value array) as a Family. */
function toFamily(id: string, flat: unknown): Family {
  if (!Array.isArray(flat)) throw new StoreUnavailable('redis: unexpected family reply')
  const hash: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) hash[String(flat[i])] = String(flat[i + 1])
  const family = hashToFamily(id, hash)
  if (family === null) throw new StoreUnavailable('redis: malformed family record')
  return family
}

/** null when the hash is empty (no such key); throws when it is not a family record. */
function hashToFamily(id: string, hash: Record<string, string>): Family | null {
  if (Object.keys(hash).length === 0) return null
  const num = (name: string): number => {
    const v = Number(hash[name])
    if (hash[name] === undefined || !Number.isFinite(v)) {
      throw new StoreUnavailable(`redis: malformed family record (${name})`)
    }
    return v
  }
  const str = (name: string): string => {
    const v = hash[name]
    if (v === undefined) throw new StoreUnavailable(`redis: malformed family record (${name})`)
    return v
  }
  return {
    id,
    userId: str('userId'),
    clientId: str('clientId'),
    scope: str('scope'),
    ...(hash.sessionId === undefined ? {} : { sessionId: hash.sessionId }),
    authTime: num('authTime'),
    ...(hash.resources === undefined ? {} : { resources: hash.resources.split(' ').filter(Boolean) }),
    ...(hash.jkt === undefined ? {} : { jkt: hash.jkt }),
    ...(hash.amr === undefined ? {} : { amr: hash.amr.split(' ').filter(Boolean) }),
    ...(hash.atAcr === '1' ? { acrInAccessTokens: true } : {}),
    createdAt: num('createdAt'),
    expiresAt: num('expiresAt'),
    lastUsedAt: num('lastUsedAt'),
    generation: num('generation'),
    revoked: hash.revoked === '1',
  }
}

function byCreation(a: Family, b: Family): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}
