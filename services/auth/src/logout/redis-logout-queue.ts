import type { Cluster, Redis } from 'ioredis'
import { redisCall } from '../store/redis-call.js'
import { DEFAULT_KEY_PREFIX, logoutQueueKeys, type LogoutQueueKeys } from '../store/key-names.js'
import { StoreUnavailable } from '../store/types.js'
import { DEFAULT_MAX_JOBS, logoutJobId, type ClaimedLogoutJob, type EnqueueOutcome, type LogoutJob, type LogoutJobInput, type LogoutQueue } from './queue.js'

/** How long the queue's keys outlive their last enqueue or claim: a queue no replica serves is not kept forever. */
export const DEFAULT_QUEUE_TTL_MS = 24 * 60 * 60 * 1000

// Every script: KEYS[1] the due sorted set, KEYS[2] the jobs hash (one hash tag, logoutQueueKeys).

/** ARGV: id, job JSON, due (ms), max jobs, TTL (ms). */
const ENQUEUE = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'exists' end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then return 'full' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 'queued'
`

/** ARGV: now (ms), limit, lease (ms), lease token, TTL (ms). Returns the claimed jobs' JSON. */
const CLAIM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local leased = string.format('%d', tonumber(ARGV[1]) + tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then
    redis.call('ZREM', KEYS[1], id)
  else
    local job = cjson.decode(raw)
    job.attempts = (tonumber(job.attempts) or 0) + 1
    job.lease = ARGV[4]
    local enc = cjson.encode(job)
    redis.call('HSET', KEYS[2], id, enc)
    redis.call('ZADD', KEYS[1], leased, id)
    out[#out + 1] = enc
  end
end
if #out > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return out
`

/** ARGV: id, lease token. 1 when removed, 0 when the lease is not (or no longer) this one. */
const COMPLETE = `
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
if cjson.decode(raw).lease ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`

/** ARGV: id, lease token, due (ms). 1 when rescheduled, 0 when the lease is lost. */
const RESCHEDULE = `
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
local job = cjson.decode(raw)
if job.lease ~= ARGV[2] then return 0 end
job.lease = ''
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(job))
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>
interface QueueScripts {
  gatehouseBclEnqueue: ScriptFn
  gatehouseBclClaim: ScriptFn
  gatehouseBclComplete: ScriptFn
  gatehouseBclReschedule: ScriptFn
}

/**
 * The queue in Redis, shared by every replica and the CLI: a job survives a replica restart and
 * is delivered by whichever replica claims it first. Each step is one Lua script over the two
 * keys, so two replicas never hold the same job at once (until a lease ends).
 */
export class RedisLogoutQueue implements LogoutQueue {
  readonly #redis: Redis | Cluster
  readonly #scripts: QueueScripts
  readonly #keys: LogoutQueueKeys
  readonly #max: number
  readonly #ttlMs: number
  readonly #clock: () => number

  constructor(options: { redis: Redis | Cluster; keyPrefix?: string; maxJobs?: number; ttlMs?: number; clock?: () => number }) {
    this.#redis = options.redis
    this.#keys = logoutQueueKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX)
    this.#max = options.maxJobs ?? DEFAULT_MAX_JOBS
    this.#ttlMs = options.ttlMs ?? DEFAULT_QUEUE_TTL_MS
    this.#clock = options.clock ?? Date.now
    if (!Number.isInteger(this.#max) || this.#max < 1) throw new TypeError('maxJobs must be a positive integer')
    if (!Number.isInteger(this.#ttlMs) || this.#ttlMs < 1) throw new TypeError('ttlMs must be a positive integer')
    this.#redis.defineCommand('gatehouseBclEnqueue', { numberOfKeys: 2, lua: ENQUEUE })
    this.#redis.defineCommand('gatehouseBclClaim', { numberOfKeys: 2, lua: CLAIM })
    this.#redis.defineCommand('gatehouseBclComplete', { numberOfKeys: 2, lua: COMPLETE })
    this.#redis.defineCommand('gatehouseBclReschedule', { numberOfKeys: 2, lua: RESCHEDULE })
    this.#scripts = this.#redis as unknown as QueueScripts
  }

  async enqueue(input: LogoutJobInput, dueAt: number): Promise<EnqueueOutcome> {
    const id = logoutJobId(input.clientId, input.sid)
    const job: LogoutJob = { id, clientId: input.clientId, sid: input.sid, sub: input.sub, attempts: 0, createdAt: this.#clock() }
    const k = this.#keys
    const reply = await redisCall('logout queue enqueue', () => this.#scripts.gatehouseBclEnqueue(k.due, k.jobs, id, JSON.stringify({ ...job, lease: '' }), ms(dueAt), this.#max, this.#ttlMs))
    if (reply === 'queued' || reply === 'exists' || reply === 'full') return reply
    throw new StoreUnavailable('redis: unexpected reply from the logout queue')
  }

  async claim(now: number, limit: number, leaseMs: number, lease: string): Promise<ClaimedLogoutJob[]> {
    const k = this.#keys
    // Every replica polls every second and the queue is almost always empty: a plain read answers
    // that, and the claim script (which checks again, atomically) runs only when a job is due.
    const due = await redisCall('logout queue poll', () => this.#redis.zrangebyscore(k.due, '-inf', ms(now), 'LIMIT', 0, 1))
    if (due.length === 0) return []
    const reply = await redisCall('logout queue claim', () => this.#scripts.gatehouseBclClaim(k.due, k.jobs, ms(now), limit, leaseMs, lease, this.#ttlMs))
    if (!Array.isArray(reply)) throw new StoreUnavailable('redis: unexpected reply from the logout queue')
    return reply.map(decodeJob).filter((j): j is ClaimedLogoutJob => j !== null)
  }

  async complete(job: ClaimedLogoutJob): Promise<boolean> {
    const k = this.#keys
    return (await redisCall('logout queue complete', () => this.#scripts.gatehouseBclComplete(k.due, k.jobs, job.id, job.lease))) === 1
  }

  async reschedule(job: ClaimedLogoutJob, dueAt: number): Promise<boolean> {
    const k = this.#keys
    return (await redisCall('logout queue reschedule', () => this.#scripts.gatehouseBclReschedule(k.due, k.jobs, job.id, job.lease, ms(dueAt)))) === 1
  }

  async size(): Promise<number> {
    return await redisCall('logout queue size', () => this.#redis.hlen(this.#keys.jobs))
  }
}

function ms(n: number): string {
  return String(Math.floor(n))
}

/** A job as the scripts wrote it; anything malformed is skipped (its lease ends, the cap bounds it). */
function decodeJob(raw: unknown): ClaimedLogoutJob | null {
  if (typeof raw !== 'string') return null
  try {
    const j = JSON.parse(raw) as Partial<ClaimedLogoutJob>
    if (typeof j.id !== 'string' || typeof j.clientId !== 'string' || typeof j.sid !== 'string' || typeof j.sub !== 'string') return null
    if (typeof j.attempts !== 'number' || typeof j.createdAt !== 'number' || typeof j.lease !== 'string') return null
    return { id: j.id, clientId: j.clientId, sid: j.sid, sub: j.sub, attempts: j.attempts, createdAt: j.createdAt, lease: j.lease }
  } catch {
    return null
  }
}
