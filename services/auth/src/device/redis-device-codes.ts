import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, deviceRequestKey, deviceUserCodeKey } from '../store/key-names.js'
import { StoreUnavailable, type Clock } from '../store/types.js'
import {
  SLOW_DOWN_STEP_SECONDS, checkOptions, deviceCodeHash, isDeviceCode, newDeviceCode, newRequestId, newUserCode, retentionMs,
  type DecideOutcome, type Decision, type DeviceCodeStore, type DeviceCodeStoreOptions, type DeviceRequest, type DeviceStatus, type PollOutcome,
} from './device-codes.js'

/**
 * Creates the request hash with its TTL, unless it exists. KEYS[1] request; ARGV: ttl (ms), then
 * field, value pairs.
 */
const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`

/**
 * The user's decision. KEYS[1] request; ARGV[1] now (ms, the injected clock), ARGV[2] request id,
 * ARGV[3] user code, ARGV[4] 'approved' | 'denied', ARGV[5] user id, ARGV[6] auth_time ('' on a
 * denial). Only a pending, unexpired request of that id and user code moves.
 */
const DECIDE_SCRIPT = `
local f = redis.call('HMGET', KEYS[1], 'id', 'user_code', 'status', 'exp')
if not f[1] or f[1] ~= ARGV[2] or f[2] ~= ARGV[3] then return 'not_found' end
if tonumber(ARGV[1]) >= tonumber(f[4]) then return 'expired' end
if f[3] ~= 'pending' then return 'decided' end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'user', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'auth_time', ARGV[6]) end
return ARGV[4]
`

/**
 * A poll (RFC 8628 §3.5), the rules of pollStep in device-codes.ts. KEYS[1] request; ARGV[1] now
 * (ms), ARGV[2] the polling client, ARGV[3] retention (ms), ARGV[4] the slow_down step (s).
 * Returns {'not_found'} | {'wrong_client'} | {'expired'} | {'denied'} | {'pending'} |
 * {'slow_down', interval} | {'approved', field, value, ...} (and the request is gone).
 */
const POLL_SCRIPT = `
local f = redis.call('HMGET', KEYS[1], 'client', 'status', 'exp', 'interval', 'last', 'created')
local now = tonumber(ARGV[1])
if not f[1] or now >= tonumber(f[6]) + tonumber(ARGV[3]) then return {'not_found'} end
if f[1] ~= ARGV[2] then return {'wrong_client'} end
if now >= tonumber(f[3]) then return {'expired'} end
if f[2] == 'denied' then return {'denied'} end
if f[2] == 'approved' then
  local all = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  local out = {'approved'}
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end
local interval = tonumber(f[4])
if f[5] and now - tonumber(f[5]) < interval * 1000 then
  interval = interval + tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'interval', interval, 'last', ARGV[1])
  return {'slow_down', interval}
end
redis.call('HSET', KEYS[1], 'last', ARGV[1])
return {'pending'}
`

type ScriptFn = (key: string, ...args: (string | number)[]) => Promise<unknown>
interface DeviceScripts {
  gatehouseDeviceCreate: ScriptFn
  gatehouseDeviceDecide: ScriptFn
  gatehouseDevicePoll: ScriptFn
}

/** Tries at a free user code before giving up (20^8 values: a collision is already rare). */
const USER_CODE_TRIES = 5

/**
 * Requests in Redis: one hash per request under the SHA-256 of its device code (fields id, client,
 * scope, user_code, status, created, exp, interval, last, user, auth_time), kept for its lifetime
 * and as long again (retentionMs); a pointer from the user code to that hash, for the lifetime
 * only. Each change is one Lua script on the request key; the pointer is claimed with SET NX
 * (Cluster-safe: no step touches two keys). Expiry is decided with the injected clock; TTLs are
 * relative, and only bound memory.
 */
export class RedisDeviceCodeStore implements DeviceCodeStore {
  readonly #redis: Redis | Cluster
  readonly #scripts: DeviceScripts
  readonly #ttlMs: number
  readonly #interval: number
  readonly #clock: Clock
  readonly #prefix: string

  constructor(options: DeviceCodeStoreOptions & { redis: Redis | Cluster; keyPrefix?: string }) {
    checkOptions(options)
    this.#redis = options.redis
    this.#ttlMs = options.ttlMs
    this.#interval = options.intervalSeconds
    this.#clock = options.clock ?? Date.now
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#redis.defineCommand('gatehouseDeviceCreate', { numberOfKeys: 1, lua: CREATE_SCRIPT })
    this.#redis.defineCommand('gatehouseDeviceDecide', { numberOfKeys: 1, lua: DECIDE_SCRIPT })
    this.#redis.defineCommand('gatehouseDevicePoll', { numberOfKeys: 1, lua: POLL_SCRIPT })
    this.#scripts = this.#redis as unknown as DeviceScripts
  }

  async start(input: { clientId: string; scope: string }): Promise<{ deviceCode: string; request: DeviceRequest }> {
    const now = this.#clock()
    const deviceCode = newDeviceCode()
    const hash = deviceCodeHash(deviceCode)
    let userCode: string | null = null
    for (let i = 0; i < USER_CODE_TRIES && userCode === null; i++) {
      const candidate = newUserCode()
      const claimed = await call('device start', () => this.#redis.set(deviceUserCodeKey(candidate, this.#prefix), hash, 'PX', this.#ttlMs, 'NX'))
      if (claimed === 'OK') userCode = candidate
    }
    if (userCode === null) throw new StoreUnavailable('redis: no free user code found')
    const request: DeviceRequest = { id: newRequestId(), clientId: input.clientId, scope: input.scope, userCode, status: 'pending', createdAt: now, expiresAt: now + this.#ttlMs, interval: this.#interval }
    const fields = ['id', request.id, 'client', request.clientId, 'scope', request.scope, 'user_code', userCode, 'status', 'pending', 'created', String(now), 'exp', String(request.expiresAt), 'interval', String(request.interval)]
    const created = await call('device start', () => this.#scripts.gatehouseDeviceCreate(deviceRequestKey(hash, this.#prefix), retentionMs(this.#ttlMs), ...fields))
    if (created !== 1) throw new StoreUnavailable('redis: device code collision')
    return { deviceCode, request }
  }

  async findByUserCode(userCode: string): Promise<DeviceRequest | null> {
    const hash = await call('device lookup', () => this.#redis.get(deviceUserCodeKey(userCode, this.#prefix)))
    if (hash === null || !/^[A-Za-z0-9_-]{43}$/.test(hash)) return null
    const fields = await call('device lookup', () => this.#redis.hgetall(deviceRequestKey(hash, this.#prefix)))
    const r = toRequest(fields)
    return r !== null && r.userCode === userCode && r.status === 'pending' && this.#clock() < r.expiresAt ? r : null
  }

  async decide(userCode: string, id: string, decision: Decision): Promise<DecideOutcome> {
    const hash = await call('device decide', () => this.#redis.get(deviceUserCodeKey(userCode, this.#prefix)))
    if (hash === null || !/^[A-Za-z0-9_-]{43}$/.test(hash)) return 'not_found'
    const status = decision.approve ? 'approved' : 'denied'
    const authTime = decision.approve ? String(decision.authTime) : ''
    const reply = await call('device decide', () => this.#scripts.gatehouseDeviceDecide(deviceRequestKey(hash, this.#prefix), this.#clock(), id, userCode, status, decision.userId, authTime))
    if (reply === 'approved' || reply === 'denied' || reply === 'not_found' || reply === 'expired' || reply === 'decided') return reply
    throw new StoreUnavailable('redis: unexpected reply from the device decision script')
  }

  async poll(deviceCode: string, clientId: string): Promise<PollOutcome> {
    if (!isDeviceCode(deviceCode)) return { status: 'not_found' }
    const key = deviceRequestKey(deviceCodeHash(deviceCode), this.#prefix)
    const reply = await call('device poll', () => this.#scripts.gatehouseDevicePoll(key, this.#clock(), clientId, retentionMs(this.#ttlMs), SLOW_DOWN_STEP_SECONDS))
    if (!Array.isArray(reply) || typeof reply[0] !== 'string') throw new StoreUnavailable('redis: unexpected reply from the device poll script')
    const [status, ...rest] = reply as [string, ...unknown[]]
    switch (status) {
      case 'pending':
      case 'denied':
      case 'expired':
      case 'not_found':
      case 'wrong_client':
        return { status }
      case 'slow_down':
        if (typeof rest[0] === 'number') return { status, interval: rest[0] }
        break
      case 'approved': {
        const fields: Record<string, string> = {}
        for (let i = 0; i + 1 < rest.length; i += 2) fields[String(rest[i])] = String(rest[i + 1])
        const request = toRequest(fields)
        if (request !== null) return { status, request }
        break
      }
    }
    throw new StoreUnavailable('redis: unexpected reply from the device poll script')
  }
}

const STATUSES: readonly DeviceStatus[] = ['pending', 'approved', 'denied']

/** A request hash read back; null when it is missing or malformed. */
function toRequest(f: Record<string, string>): DeviceRequest | null {
  const { id, client, scope, user_code: userCode, status, created, exp, interval, last, user, auth_time: authTime } = f
  if (id === undefined || client === undefined || scope === undefined || userCode === undefined || created === undefined || exp === undefined || interval === undefined) return null
  if (!STATUSES.includes(status as DeviceStatus)) return null
  const r: DeviceRequest = { id, clientId: client, scope, userCode, status: status as DeviceStatus, createdAt: Number(created), expiresAt: Number(exp), interval: Number(interval) }
  if (last !== undefined) r.lastPollAt = Number(last)
  if (user !== undefined) r.userId = user
  if (authTime !== undefined) r.authTime = Number(authTime)
  return r
}
