import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import type { LogoutQueue } from '../../src/logout/queue.js'
import { RedisLogoutQueue } from '../../src/logout/redis-logout-queue.js'

/**
 * The LogoutQueue conformance suite (logout/queue.ts): memory, Redis and Redis Cluster run
 * exactly these tests. Time is a number the tests pass in; nothing sleeps.
 */
export interface QueueFixture {
  queue: LogoutQueue
  /** Another instance over the same storage (another replica); the memory queue returns itself. */
  twin(): Promise<LogoutQueue>
  close(): Promise<void>
}

export type QueueFactory = (options: { clock: () => number; maxJobs?: number }) => Promise<QueueFixture>

/** Redis queues under a fresh key prefix, each twin on a connection of its own (standalone or Cluster). */
export function redisQueueFactory(connect: () => Promise<Redis | Cluster>): QueueFactory {
  return async ({ clock, maxJobs }) => {
    const keyPrefix = `t${randomBytes(4).toString('hex')}:`
    const conns = [await connect()]
    const make = (redis: Redis | Cluster) => new RedisLogoutQueue({ redis, keyPrefix, clock, ...(maxJobs !== undefined ? { maxJobs } : {}) })
    return {
      queue: make(conns[0]!),
      twin: async () => {
        const redis = await connect()
        conns.push(redis)
        return make(redis)
      },
      close: async () => {
        for (const c of conns) c.disconnect()
      },
    }
  }
}

const T0 = 1_767_225_600_000
const LEASE = 35_000

export function logoutQueueContract(t: Test, factory: QueueFactory): void {
  const open = async (t: Test, maxJobs?: number): Promise<QueueFixture> => {
    const f = await factory({ clock: () => T0, ...(maxJobs !== undefined ? { maxJobs } : {}) })
    t.teardown(() => f.close())
    return f
  }

  t.test('a job is claimed when due, with its fields, attempts counted and a lease', async (t) => {
    const { queue } = await open(t)
    t.equal(await queue.enqueue({ clientId: 'web', sid: 's1', sub: 'u_1' }, T0 + 1000), 'queued')
    t.same(await queue.claim(T0 + 999, 10, LEASE, 'L1'), [], 'not due yet')
    const [job, ...rest] = await queue.claim(T0 + 1000, 10, LEASE, 'L1')
    t.same(rest, [])
    t.match(job, { clientId: 'web', sid: 's1', sub: 'u_1', attempts: 1, createdAt: T0, lease: 'L1' })
    t.type(job?.id, 'string')
    t.equal(await queue.size(), 1, 'a claimed job stays queued until settled')
  })

  t.test('awkward identifiers survive the round trip', async (t) => {
    const { queue } = await open(t)
    const sid = 'é"\\/\u0000{x}\n\u2028'
    const sub = 'u_ "quoted" \\ ünïcødé 𝄞'
    await queue.enqueue({ clientId: 'c{1}', sid, sub }, T0)
    t.match(await queue.claim(T0, 1, LEASE, 'L'), [{ clientId: 'c{1}', sid, sub }])
  })

  t.test('the same session and client queue one job; another client its own', async (t) => {
    const { queue } = await open(t)
    t.equal(await queue.enqueue({ clientId: 'web', sid: 's1', sub: 'u' }, T0), 'queued')
    t.equal(await queue.enqueue({ clientId: 'web', sid: 's1', sub: 'u' }, T0), 'exists')
    t.equal(await queue.enqueue({ clientId: 'spa', sid: 's1', sub: 'u' }, T0), 'queued')
    t.equal(await queue.enqueue({ clientId: 'web', sid: 's2', sub: 'u' }, T0), 'queued')
    t.equal(await queue.size(), 3)
  })

  t.test('a leased job is not claimed again until its lease ends; then attempts grow and the old lease is void', async (t) => {
    const { queue } = await open(t)
    await queue.enqueue({ clientId: 'web', sid: 's1', sub: 'u' }, T0)
    const [first] = await queue.claim(T0, 10, LEASE, 'A')
    t.same(await queue.claim(T0 + LEASE - 1, 10, LEASE, 'B'), [], 'held by A')
    const [second] = await queue.claim(T0 + LEASE, 10, LEASE, 'B')
    t.match(second, { id: first?.id, attempts: 2, lease: 'B' })
    t.equal(await queue.complete(first!), false, 'A lost its lease: completing does nothing')
    t.equal(await queue.reschedule(first!, T0), false, 'nor does rescheduling')
    t.equal(await queue.size(), 1)
    t.equal(await queue.complete(second!), true, 'B completes it')
    t.equal(await queue.size(), 0)
    t.equal(await queue.complete(second!), false, 'once')
  })

  t.test('reschedule makes the job due at the given time', async (t) => {
    const { queue } = await open(t)
    await queue.enqueue({ clientId: 'web', sid: 's1', sub: 'u' }, T0)
    const [job] = await queue.claim(T0, 10, LEASE, 'A')
    t.equal(await queue.reschedule(job!, T0 + 10_000), true)
    t.equal(await queue.reschedule(job!, T0 + 10_000), false, 'the lease was released by the first reschedule')
    t.same(await queue.claim(T0 + 9_999, 10, LEASE, 'B'), [])
    t.match(await queue.claim(T0 + 10_000, 10, LEASE, 'B'), [{ id: job!.id, attempts: 2, lease: 'B' }])
  })

  t.test('claims take the earliest due first, at most the limit', async (t) => {
    const { queue } = await open(t)
    for (const [i, due] of [30, 10, 20, 40].entries()) await queue.enqueue({ clientId: `c${i}`, sid: 's', sub: 'u' }, T0 + due)
    t.same((await queue.claim(T0 + 35, 2, LEASE, 'A')).map((j) => j.clientId), ['c1', 'c2'])
    t.same((await queue.claim(T0 + 35, 2, LEASE, 'A')).map((j) => j.clientId), ['c0'])
    t.same(await queue.claim(T0 + 35, 2, LEASE, 'A'), [])
  })

  t.test('the queue is capped: beyond maxJobs a job is refused, not stored', async (t) => {
    const { queue } = await open(t, 3)
    for (let i = 0; i < 3; i++) t.equal(await queue.enqueue({ clientId: `c${i}`, sid: 's', sub: 'u' }, T0), 'queued')
    t.equal(await queue.enqueue({ clientId: 'c3', sid: 's', sub: 'u' }, T0), 'full')
    t.equal(await queue.size(), 3)
    const [job] = await queue.claim(T0, 1, LEASE, 'A')
    await queue.complete(job!)
    t.equal(await queue.enqueue({ clientId: 'c3', sid: 's', sub: 'u' }, T0), 'queued', 'room again once one is settled')
  })

  t.test('concurrent claims from two instances never hand out the same job', async (t) => {
    const { queue, twin } = await open(t)
    const other = await twin()
    for (let i = 0; i < 40; i++) await queue.enqueue({ clientId: `c${i}`, sid: 's', sub: 'u' }, T0)
    const claims = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? queue : other).claim(T0, 5, LEASE, `L${i}`)))
    const ids = claims.flat().map((j) => j.id)
    t.equal(ids.length, 40, 'every job claimed')
    t.equal(new Set(ids).size, 40, 'each exactly once')
  })
}
