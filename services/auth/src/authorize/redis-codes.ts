import type { Cluster, Redis } from 'ioredis'
import { redisCall as call } from '../store/redis-call.js'
import { authorizationCodeKey, DEFAULT_KEY_PREFIX } from '../store/key-names.js'
import { StoreUnavailable, type Clock } from '../store/types.js'
import { CODE, newCode, codeHash, settings, type CodeGrant, type ConsumeOutcome, type AuthorizationCodeStore, type CodeStoreOptions } from './codes.js'

/**
 * Consume, atomically. KEYS[1] code key; ARGV[1] now (ms, the injected clock), ARGV[2] how long
 * the spent marker lives (ms). Returns {'ok', grant} | {'reused', grant, familyId or ''} |
 * {'expired'} | {'not_found'}.
 */
const CONSUME_SCRIPT = `
local f = redis.call('HMGET', KEYS[1], 'grant', 'expiresAt', 'used', 'family')
if not f[1] then
  return {'not_found'}
end
if f[3] == '1' then
  redis.call('HSET', KEYS[1], 'replayed', '1')
  return {'reused', f[1], f[4] or ''}
end
if tonumber(ARGV[1]) >= tonumber(f[2]) then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok', f[1]}
`

/** KEYS[1] code key; ARGV[1] family id. Returns 'recorded' | 'replayed' | 'gone'. */
const RECORD_FAMILY_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'gone'
end
redis.call('HSET', KEYS[1], 'family', ARGV[1])
if redis.call('HGET', KEYS[1], 'replayed') == '1' then
  return 'replayed'
end
return 'recorded'
`

type ScriptFn = (key: string, ...args: (string | number)[]) => Promise<unknown>
interface CodeScripts {
  gatehouseCodeConsume: ScriptFn
  gatehouseCodeRecordFamily: ScriptFn
}

export interface RedisAuthorizationCodeStoreOptions extends CodeStoreOptions {
  redis: Redis | Cluster
  keyPrefix?: string
}

/**
 * Codes in Redis: one hash per code under its SHA-256 (fields grant, expiresAt, used, family,
 * replayed), TTL the code's lifetime, then the spent marker's. Each step is one Lua script on one
 * key (Cluster-safe). Expiry is decided with the injected clock; TTLs are relative.
 */
export class RedisAuthorizationCodeStore implements AuthorizationCodeStore {
  readonly #redis: Redis | Cluster
  readonly #scripts: CodeScripts
  readonly #s: { lifetimeMs: number; spentTtlMs: number; clock: Clock }
  readonly #prefix: string

  constructor(options: RedisAuthorizationCodeStoreOptions) {
    this.#s = settings(options)
    this.#redis = options.redis
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#redis.defineCommand('gatehouseCodeConsume', { numberOfKeys: 1, lua: CONSUME_SCRIPT })
    this.#redis.defineCommand('gatehouseCodeRecordFamily', { numberOfKeys: 1, lua: RECORD_FAMILY_SCRIPT })
    this.#scripts = this.#redis as unknown as CodeScripts
  }

  async issue(grant: CodeGrant): Promise<string> {
    const code = newCode()
    const key = authorizationCodeKey(codeHash(code), this.#prefix)
    const expiresAt = this.#s.clock() + this.#s.lifetimeMs
    const replies = await call('code issue', () =>
      this.#redis
        .multi()
        .hset(key, 'grant', JSON.stringify(grant), 'expiresAt', String(expiresAt), 'used', '0')
        .pexpire(key, this.#s.lifetimeMs)
        .exec(),
    )
    if (replies === null || replies.some(([err]) => err !== null)) throw new StoreUnavailable('redis: code issue failed')
    return code
  }

  async consume(code: string): Promise<ConsumeOutcome> {
    if (typeof code !== 'string' || !CODE.test(code)) return { status: 'not_found' }
    const key = authorizationCodeKey(codeHash(code), this.#prefix)
    const reply = await call('code consume', () => this.#scripts.gatehouseCodeConsume(key, this.#s.clock(), this.#s.spentTtlMs))
    if (!Array.isArray(reply) || typeof reply[0] !== 'string') throw new StoreUnavailable('redis: unexpected reply from the code script')
    const status = reply[0]
    if (status === 'not_found' || status === 'expired') return { status }
    const grant = decodeGrant(reply[1])
    if (grant === null) return { status: 'not_found' }
    if (status === 'ok') return { status, grant }
    const familyId = typeof reply[2] === 'string' && reply[2] !== '' ? reply[2] : undefined
    return { status: 'reused', grant, ...(familyId === undefined ? {} : { familyId }) }
  }

  async recordFamily(code: string, familyId: string): Promise<'recorded' | 'replayed'> {
    if (typeof code !== 'string' || !CODE.test(code)) return 'recorded'
    const key = authorizationCodeKey(codeHash(code), this.#prefix)
    const reply = await call('code record', () => this.#scripts.gatehouseCodeRecordFamily(key, familyId))
    return reply === 'replayed' ? 'replayed' : 'recorded'
  }
}

function decodeGrant(raw: unknown): CodeGrant | null {
  if (typeof raw !== 'string') return null
  try {
    const g = JSON.parse(raw) as Partial<CodeGrant>
    const strings = [g.clientId, g.redirectUri, g.codeChallenge, g.scope, g.userId, g.sessionId]
    if (strings.some((v) => typeof v !== 'string') || typeof g.authTime !== 'number') return null
    if (g.nonce !== undefined && typeof g.nonce !== 'string') return null
    if (g.dpopJkt !== undefined && typeof g.dpopJkt !== 'string') return null
    if (g.resources !== undefined && (!Array.isArray(g.resources) || g.resources.some((r) => typeof r !== 'string'))) return null
    if (g.amr !== undefined && (!Array.isArray(g.amr) || g.amr.some((r) => typeof r !== 'string'))) return null
    if (g.acrValues !== undefined && (!Array.isArray(g.acrValues) || g.acrValues.some((r) => typeof r !== 'string'))) return null
    return g as CodeGrant
  } catch {
    return null
  }
}
