import { RefreshTokenCodec } from './refresh-token-codec.js'
import { assertClock, assertPolicy, isExpired, lookupByToken, newFamily } from './policy.js'
import type {
  Family,
  FamilyInput,
  FamilyPolicy,
  FamilyStore,
  RevokeReason,
  RotateContext,
  RotateOutcome,
} from './types.js'
import type { Clock } from '../store/types.js'

export interface MemoryFamilyStoreOptions {
  codec: RefreshTokenCodec
  policy: FamilyPolicy
  clock?: Clock
  /**
   * Expired families are swept at most this often (ms of the injected clock), on the next
   * `create`. Expired entries already answer `expired`/null before they are swept.
   */
  sweepIntervalMs?: number
  /**
   * Announces a revoked family to resource services (DESIGN §6), called inside the revoking step
   * (reuse, revoke, revokeByUser, revokeBySession, and a revoke of an already revoked family).
   * In one process nobody else listens: the service passes its `deps.revocations`, a
   * NoopRevocationPublisher (tests put a recording one there). Must not throw.
   */
  announce?: (sid: string, exp: number) => void
  /** Seconds an announcement lives (ACCESS_TOKEN_TTL); default 900. */
  accessTokenTtlS?: number
}

interface Entry {
  family: Family
  /** When the current generation was issued (the reuse-grace window starts here); 0 before any rotation. */
  rotatedAt: number
}

/**
 * The in-process family store: the embedded default for development only (DESIGN §5). Same
 * semantics as RedisFamilyStore, checked by the same contract suite. Every method body runs
 * without an `await` before it has decided, so each operation is atomic within the process.
 * Memory is bounded by live families: expired ones are swept.
 */
export class MemoryFamilyStore implements FamilyStore {
  readonly #codec: RefreshTokenCodec
  readonly #policy: FamilyPolicy
  readonly #clock: Clock
  readonly #sweepIntervalMs: number
  readonly #announce: (sid: string, exp: number) => void
  readonly #accessTokenTtlS: number
  readonly #families = new Map<string, Entry>()
  readonly #byUser = new Map<string, Set<string>>()
  readonly #bySession = new Map<string, Set<string>>()
  #lastSweep: number

  constructor(options: MemoryFamilyStoreOptions) {
    if (!(options?.codec instanceof RefreshTokenCodec)) throw new TypeError('codec must be a RefreshTokenCodec')
    this.#codec = options.codec
    this.#policy = assertPolicy(options.policy)
    const clock = options.clock ?? Date.now
    assertClock(clock)
    this.#clock = clock
    const sweep = options.sweepIntervalMs ?? 60_000
    if (!Number.isFinite(sweep) || sweep < 0) throw new TypeError('sweepIntervalMs must be a number >= 0')
    this.#sweepIntervalMs = sweep
    this.#announce = options.announce ?? (() => undefined)
    const ttl = options.accessTokenTtlS ?? 900
    if (!Number.isSafeInteger(ttl) || ttl < 1) throw new TypeError('accessTokenTtlS must be an integer >= 1 (s)')
    this.#accessTokenTtlS = ttl
    this.#lastSweep = this.#clock()
  }

  /** Number of families held (live, revoked or expired but not yet swept). */
  get size(): number {
    return this.#families.size
  }

  /** Drops every expired family and its index entries now; returns how many were dropped. */
  sweep(): number {
    const now = this.#clock()
    this.#lastSweep = now
    let dropped = 0
    for (const [id, entry] of this.#families) {
      if (isExpired(entry.family, this.#policy, now)) {
        this.#drop(id, entry.family)
        dropped++
      }
    }
    return dropped
  }

  async create(input: FamilyInput): Promise<{ family: Family; refreshToken: string }> {
    const now = this.#clock()
    if (now - this.#lastSweep >= this.#sweepIntervalMs) this.sweep()
    let id = RefreshTokenCodec.newFamilyId()
    while (this.#families.has(id)) id = RefreshTokenCodec.newFamilyId()
    const family = newFamily(id, input, this.#policy, now)
    this.#families.set(id, { family, rotatedAt: 0 })
    addTo(this.#byUser, family.userId, id)
    if (family.sessionId !== undefined) addTo(this.#bySession, family.sessionId, id)
    return { family: { ...family }, refreshToken: this.#codec.mint(id, 0) }
  }

  async rotate(refreshToken: string, ctx: RotateContext): Promise<RotateOutcome> {
    const parsed = this.#codec.parse(refreshToken)
    if (parsed === null) return { status: 'not_found' }
    const entry = this.#families.get(parsed.familyId)
    if (entry === undefined) return { status: 'not_found' }
    const { family } = entry
    const now = this.#clock()
    if (family.revoked) return { status: 'revoked', family: { ...family } }
    if (isExpired(family, this.#policy, now)) return { status: 'expired' }
    if (family.clientId !== ctx.clientId) return { status: 'client_mismatch', family: { ...family } }
    // Same rule as the Redis script: a bound family rotates only with its key; nothing changes otherwise.
    if (family.jkt !== undefined && family.jkt !== ctx.jkt) return { status: 'key_mismatch', family: { ...family } }

    const presented = parsed.generation
    if (presented === family.generation) {
      if (family.jkt === undefined && ctx.bind === true && ctx.jkt !== undefined) family.jkt = ctx.jkt
      family.generation += 1
      family.lastUsedAt = now
      entry.rotatedAt = now
      return { status: 'rotated', family: { ...family }, refreshToken: this.#codec.mint(family.id, family.generation) }
    }
    if (presented === family.generation - 1 && now - entry.rotatedAt <= this.#policy.reuseGraceMs) {
      // A retry (two tabs, a lost response): the same successor, not a new branch.
      return { status: 'retried', family: { ...family }, refreshToken: this.#codec.mint(family.id, family.generation) }
    }
    // Same rule as the Redis script: a request older than the last rotation is a delayed duplicate.
    if (presented < family.generation && now < family.lastUsedAt) return { status: 'stale' }
    if (presented < family.generation) {
      family.revoked = true
      this.#unindex(family)
      this.#announced(family.id, now)
      return { status: 'reused', family: { ...family } }
    }
    return { status: 'not_found' }
  }

  async get(familyId: string): Promise<Family | null> {
    const entry = this.#families.get(familyId)
    if (entry === undefined || isExpired(entry.family, this.#policy, this.#clock())) return null
    return { ...entry.family }
  }

  async lookup(refreshToken: string): Promise<{ family: Family; current: boolean } | null> {
    return lookupByToken(this.#codec, (id) => this.get(id), refreshToken)
  }

  async revoke(familyId: string, _reason: RevokeReason): Promise<Family | null> {
    return this.#revokeNow(familyId, this.#clock())
  }

  async revokeByUser(userId: string, _reason: RevokeReason): Promise<Family[]> {
    return this.#revokeAll(this.#byUser, userId)
  }

  async revokeBySession(sessionId: string, _reason: RevokeReason): Promise<Family[]> {
    return this.#revokeAll(this.#bySession, sessionId)
  }

  async listByUser(userId: string): Promise<Family[]> {
    const ids = this.#byUser.get(userId)
    if (ids === undefined) return []
    const now = this.#clock()
    const live: Family[] = []
    for (const id of [...ids]) {
      const entry = this.#families.get(id)
      if (entry === undefined || entry.family.revoked || isExpired(entry.family, this.#policy, now)) {
        ids.delete(id) // prune dead members on read
        continue
      }
      live.push({ ...entry.family })
    }
    if (ids.size === 0) this.#byUser.delete(userId)
    return live.sort(byCreation)
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#families.clear()
    this.#byUser.clear()
    this.#bySession.clear()
  }

  /** Revokes the family if it is live and returns it; announces an already revoked one again (null). */
  #revokeNow(familyId: string, now: number): Family | null {
    const entry = this.#families.get(familyId)
    if (entry === undefined) return null
    const { family } = entry
    if (isExpired(family, this.#policy, now)) return null
    this.#announced(family.id, now)
    if (family.revoked) return null
    family.revoked = true
    this.#unindex(family)
    return { ...family }
  }

  #announced(familyId: string, now: number): void {
    try {
      this.#announce(familyId, Math.floor(now / 1000) + this.#accessTokenTtlS)
    } catch {
      // An in-process listener's failure must not undo or fail the revocation.
    }
  }

  /** Every member of one index entry, revoked in one synchronous pass; the entry is then gone. */
  #revokeAll(index: Map<string, Set<string>>, key: string): Family[] {
    const ids = index.get(key)
    if (ids === undefined) return []
    const now = this.#clock()
    const revoked: Family[] = []
    for (const id of [...ids]) {
      const family = this.#revokeNow(id, now)
      if (family !== null) revoked.push(family)
    }
    index.delete(key)
    return revoked.sort(byCreation)
  }

  /** A revoked family stays (so it answers `revoked`) until it expires, but leaves the indexes. */
  #unindex(family: Family): void {
    removeFrom(this.#byUser, family.userId, family.id)
    if (family.sessionId !== undefined) removeFrom(this.#bySession, family.sessionId, family.id)
  }

  #drop(id: string, family: Family): void {
    this.#families.delete(id)
    this.#unindex(family)
  }
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  let set = index.get(key)
  if (set === undefined) index.set(key, (set = new Set()))
  set.add(id)
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const set = index.get(key)
  if (set === undefined) return
  set.delete(id)
  if (set.size === 0) index.delete(key)
}

function byCreation(a: Family, b: Family): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}
