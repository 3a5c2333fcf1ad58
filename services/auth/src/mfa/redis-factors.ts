// Over 300 lines: each verb's Lua script sits beside the class that runs it, with the rule it
// enforces; split apart, a script would be read without its caller, or the reverse.
import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, passkeyCredentialKey, userFactorsKey } from '../store/key-names.js'
import { StoreUnavailable } from '../store/types.js'
import {
  isFactorId, isFactorNumber, isSingleton, storedText,
  type AddFactorResult, type Factor, type FactorStore, type PasskeyFactor, type PasskeyUse, type RecoveryCodesFactor,
} from './factors.js'

/**
 * Adds a factor unless its id is taken or, for a kind held once, the user holds one. KEYS[1] the
 * user's hash; ARGV[1] factor id, ARGV[2] kind, ARGV[3] '1' when the kind is held once, ARGV[4] the
 * factor's JSON. The stored value is that JSON with `seq` (1 + the highest held) put first, the
 * order added, which `list` breaks createdAt ties with (a hash has no order of its own). Returns 1
 * added, 0 exists.
 */
const ADD_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local seq = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local f = cjson.decode(v)
  if ARGV[3] == '1' and f.kind == ARGV[2] then return 0 end
  if type(f.seq) == 'number' and f.seq > seq then seq = f.seq end
end
redis.call('HSET', KEYS[1], ARGV[1], '{"seq":' .. (seq + 1) .. ',' .. string.sub(ARGV[4], 2))
return 1
`

/** Replaces the user's recovery set (any held) with ARGV[2] (JSON) under id ARGV[1]; KEYS[1] the user's hash. */
const REPLACE_RECOVERY_SCRIPT = `
local seq = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f = cjson.decode(all[i + 1])
  if type(f.seq) == 'number' and f.seq > seq then seq = f.seq end
  if f.kind == 'recovery' then redis.call('HDEL', KEYS[1], all[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], '{"seq":' .. (seq + 1) .. ',' .. string.sub(ARGV[2], 2))
return 1
`

/** Removes factor ARGV[1] from KEYS[1] and returns it (false when absent). */
const REMOVE_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return v
`

/** Removes every factor of KEYS[1] and returns them. */
const REMOVE_ALL_SCRIPT = `
local v = redis.call('HVALS', KEYS[1])
redis.call('DEL', KEYS[1])
return v
`

/**
 * RFC 6238 §5.2: accepts TOTP step ARGV[2] of factor ARGV[1] only when later than the last accepted
 * one, and records it with lastUsedAt ARGV[3]. KEYS[1] the user's hash. Returns 1 accepted, 0 not.
 */
const USE_TOTP_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local f = cjson.decode(v)
local step = tonumber(ARGV[2])
if f.kind ~= 'totp' or type(f.lastStep) ~= 'number' or step <= f.lastStep then return 0 end
f.lastStep = step
f.lastUsedAt = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(f))
return 1
`

/**
 * WebAuthn §6.1.1: accepts signature counter ARGV[3] for passkey ARGV[1] (credential id ARGV[2])
 * when it is greater than the stored one, or both are 0; records it with lastUsedAt ARGV[4].
 * KEYS[1] the user's hash. Returns {'ok', factor JSON} | {'replayed'} | {'not_found'}.
 */
const USE_PASSKEY_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {'not_found'} end
local f = cjson.decode(v)
if f.kind ~= 'passkey' or f.credentialId ~= ARGV[2] or type(f.counter) ~= 'number' then return {'not_found'} end
local c = tonumber(ARGV[3])
if not (c > f.counter or (c == 0 and f.counter == 0)) then return {'replayed'} end
f.counter = c
f.lastUsedAt = tonumber(ARGV[4])
local out = cjson.encode(f)
redis.call('HSET', KEYS[1], ARGV[1], out)
return {'ok', out}
`

/**
 * Spends recovery code digest ARGV[1] of the user's recovery set (lastUsedAt ARGV[2]); KEYS[1]
 * the user's hash. Returns the codes left, or -1 when it is not one of them. (An emptied array is
 * written by cjson as {}; the reader takes it for [].)
 */
const USE_RECOVERY_SCRIPT = `
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f = cjson.decode(all[i + 1])
  if f.kind == 'recovery' then
    local left = {}
    local found = false
    if type(f.codeHashes) == 'table' then
      for _, h in ipairs(f.codeHashes) do
        if not found and h == ARGV[1] then found = true else left[#left + 1] = h end
      end
    end
    if not found then return -1 end
    f.codeHashes = left
    f.lastUsedAt = tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], all[i], cjson.encode(f))
    return #left
  end
end
return -1
`

/** Deletes KEYS[1] only while it still holds ARGV[1] (a passkey's pointer, never another's). */
const DELETE_IF_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

type ScriptFn = (key: string, ...args: (string | number)[]) => Promise<unknown>
interface FactorScripts {
  gatehouseFactorAdd: ScriptFn
  gatehouseFactorReplaceRecovery: ScriptFn
  gatehouseFactorRemove: ScriptFn
  gatehouseFactorRemoveAll: ScriptFn
  gatehouseFactorUseTotp: ScriptFn
  gatehouseFactorUsePasskey: ScriptFn
  gatehouseFactorUseRecovery: ScriptFn
  gatehouseFactorDeleteIf: ScriptFn
}

/** The SHA-256 of a credential id, base64url: what names its pointer key (any length, any bytes). */
export function credentialDigest(credentialId: string): string {
  return createHash('sha256').update(credentialId, 'utf8').digest('base64url')
}

/** A stored value: the factor and the order it was added in. */
interface Stored {
  seq: number
  factor: Factor
}

/** A factor's JSON as stored, every string well-formed (cjson refuses a lone surrogate). */
function toJson(factor: Factor): string {
  return JSON.stringify(factor, (_key, v: unknown) => (typeof v === 'string' ? storedText(v) : v))
}

/** A stored value read back; cjson writes an empty array as {}, so the arrays are made arrays again. */
function parse(json: unknown): Stored {
  if (typeof json !== 'string') throw new StoreUnavailable('redis: unexpected factor record')
  let v: unknown
  try {
    v = JSON.parse(json)
  } catch {
    throw new StoreUnavailable('redis: unreadable factor record')
  }
  if (typeof v !== 'object' || v === null) throw new StoreUnavailable('redis: unreadable factor record')
  const { seq, ...rest } = v as Record<string, unknown>
  if (rest.kind === 'passkey' && !Array.isArray(rest.transports)) rest.transports = []
  if (rest.kind === 'recovery' && !Array.isArray(rest.codeHashes)) rest.codeHashes = []
  return { seq: typeof seq === 'number' ? seq : 0, factor: rest as unknown as Factor }
}

/** Oldest first: by createdAt, then the order added. */
function ordered(values: unknown): Factor[] {
  if (!Array.isArray(values)) throw new StoreUnavailable('redis: unexpected reply listing factors')
  return values.map(parse).sort((a, b) => a.factor.createdAt - b.factor.createdAt || a.seq - b.seq).map((s) => s.factor)
}

/** `<userId> <factorId>`: a factor id has no space (isFactorId), so the last space splits them. */
function pointerValue(userId: string, factorId: string): string {
  return `${userId} ${factorId}`
}

function readPointer(value: string | null): { userId: string; factorId: string } | null {
  if (value === null) return null
  const at = value.lastIndexOf(' ')
  if (at < 0) return null
  const factorId = value.slice(at + 1)
  return isFactorId(factorId) ? { userId: value.slice(0, at), factorId } : null
}

/**
 * Second factors in Redis (DESIGN §10.5), durable (no TTL): one hash per user,
 * `<prefix>factors:{<userId>}`, field = factor id, value = the factor's JSON (with `seq`, the
 * order added); and one pointer per passkey, `<prefix>passkey:<SHA-256 of its credential id>` →
 * `<userId> <factorId>`, for username-less sign-in. Every use and every add is one Lua script on
 * the user's hash (one key, one Cluster slot): two replicas can never both accept the same TOTP
 * step, passkey counter or recovery code.
 *
 * A credential id is unique across users: the pointer is claimed first (SET NX, one key), the
 * factor added after; an add refused by the user's hash gives the pointer back. Removing deletes
 * the factor, then its pointer (only while it names that factor). A pointer left behind by a crash
 * between the two steps names no factor: lookups through it find nothing, and it only keeps that
 * one credential id (which an authenticator never makes again) from being registered.
 */
export class RedisFactorStore implements FactorStore {
  readonly #redis: Redis | Cluster
  readonly #scripts: FactorScripts
  readonly #prefix: string

  constructor(options: { redis: Redis | Cluster; keyPrefix?: string }) {
    this.#redis = options.redis
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    const define = (name: keyof FactorScripts, lua: string) => this.#redis.defineCommand(name, { numberOfKeys: 1, lua })
    define('gatehouseFactorAdd', ADD_SCRIPT)
    define('gatehouseFactorReplaceRecovery', REPLACE_RECOVERY_SCRIPT)
    define('gatehouseFactorRemove', REMOVE_SCRIPT)
    define('gatehouseFactorRemoveAll', REMOVE_ALL_SCRIPT)
    define('gatehouseFactorUseTotp', USE_TOTP_SCRIPT)
    define('gatehouseFactorUsePasskey', USE_PASSKEY_SCRIPT)
    define('gatehouseFactorUseRecovery', USE_RECOVERY_SCRIPT)
    define('gatehouseFactorDeleteIf', DELETE_IF_SCRIPT)
    this.#scripts = this.#redis as unknown as FactorScripts
  }

  async list(userId: string): Promise<Factor[]> {
    return ordered(await call('factors list', () => this.#redis.hvals(this.#userKey(userId))))
  }

  async add(factor: Factor): Promise<AddFactorResult> {
    if (!isFactorId(factor.id)) throw new TypeError('invalid factor id')
    const key = this.#userKey(factor.userId)
    const json = toJson(factor)
    const single = isSingleton(factor.kind) ? '1' : '0'
    if (factor.kind !== 'passkey') {
      return (await call('factors add', () => this.#scripts.gatehouseFactorAdd(key, factor.id, factor.kind, single, json))) === 1 ? 'added' : 'exists'
    }
    const pointer = this.#pointerKey(factor.credentialId)
    const claim = pointerValue(storedText(factor.userId), factor.id)
    if ((await call('factors add', () => this.#redis.set(pointer, claim, 'NX'))) !== 'OK') return 'exists'
    const added = await call('factors add', () => this.#scripts.gatehouseFactorAdd(key, factor.id, factor.kind, single, json))
    if (added === 1) return 'added'
    await call('factors add', () => this.#scripts.gatehouseFactorDeleteIf(pointer, claim))
    return 'exists'
  }

  async replaceRecoveryCodes(factor: RecoveryCodesFactor): Promise<void> {
    if (!isFactorId(factor.id)) throw new TypeError('invalid factor id')
    await call('factors replace recovery codes', () => this.#scripts.gatehouseFactorReplaceRecovery(this.#userKey(factor.userId), factor.id, toJson(factor)))
  }

  async remove(userId: string, factorId: string): Promise<Factor | null> {
    if (!isFactorId(factorId)) return null
    const reply = await call('factors remove', () => this.#scripts.gatehouseFactorRemove(this.#userKey(userId), factorId))
    if (reply === null) return null
    const { factor } = parse(reply)
    await this.#dropPointers([factor])
    return factor
  }

  async removeAll(userId: string): Promise<Factor[]> {
    const removed = ordered(await call('factors remove all', () => this.#scripts.gatehouseFactorRemoveAll(this.#userKey(userId))))
    await this.#dropPointers(removed)
    return removed
  }

  async findPasskey(credentialId: string): Promise<PasskeyFactor | null> {
    const at = readPointer(await call('factors find passkey', () => this.#redis.get(this.#pointerKey(credentialId))))
    if (at === null) return null
    const value = await call('factors find passkey', () => this.#redis.hget(this.#userKey(at.userId), at.factorId))
    if (value === null) return null
    const { factor } = parse(value)
    return factor.kind === 'passkey' && factor.credentialId === credentialId ? factor : null
  }

  async useTotpStep(userId: string, factorId: string, step: number, at: number): Promise<boolean> {
    if (!isFactorId(factorId) || !isFactorNumber(step)) return false
    return (await call('factors use totp', () => this.#scripts.gatehouseFactorUseTotp(this.#userKey(userId), factorId, step, at))) === 1
  }

  async usePasskey(credentialId: string, counter: number, at: number): Promise<PasskeyUse> {
    const holder = readPointer(await call('factors use passkey', () => this.#redis.get(this.#pointerKey(credentialId))))
    if (holder === null) return { status: 'not_found' }
    if (!isFactorNumber(counter)) return { status: 'replayed' }
    const reply = await call('factors use passkey', () => this.#scripts.gatehouseFactorUsePasskey(this.#userKey(holder.userId), holder.factorId, credentialId, counter, at))
    if (!Array.isArray(reply)) throw new StoreUnavailable('redis: unexpected reply from the passkey script')
    if (reply[0] === 'replayed' || reply[0] === 'not_found') return { status: reply[0] }
    const { factor } = parse(reply[1])
    if (reply[0] !== 'ok' || factor.kind !== 'passkey') throw new StoreUnavailable('redis: unexpected reply from the passkey script')
    return { status: 'ok', factor }
  }

  async useRecoveryCode(userId: string, codeHash: string, at: number): Promise<number | null> {
    const left = await call('factors use recovery code', () => this.#scripts.gatehouseFactorUseRecovery(this.#userKey(userId), codeHash, at))
    if (typeof left !== 'number') throw new StoreUnavailable('redis: unexpected reply from the recovery code script')
    return left < 0 ? null : left
  }

  /** The pointers of removed passkeys, each deleted only while it still names that factor. */
  async #dropPointers(removed: readonly Factor[]): Promise<void> {
    for (const f of removed) {
      if (f.kind !== 'passkey') continue
      await call('factors remove', () => this.#scripts.gatehouseFactorDeleteIf(this.#pointerKey(f.credentialId), pointerValue(f.userId, f.id)))
    }
  }

  #userKey(userId: string): string {
    return userFactorsKey(userId, this.#prefix)
  }

  #pointerKey(credentialId: string): string {
    return passkeyCredentialKey(credentialDigest(credentialId), this.#prefix)
  }
}
