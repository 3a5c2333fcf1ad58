/**
 * Redis failover under load, through the auth app (issue 6): many clients keep refreshing their
 * token families while the Redis master is killed (SIGKILL), first behind Sentinel, then in a
 * Cluster. What must hold:
 *  - no 500: every answer is 200, or 503 `temporarily_unavailable` while the store fails over
 *    (bounded, counted, reported);
 *  - no family forks: a token never gets two different successors;
 *  - every family ends consistent: the store's generation is the client's, and nothing was revoked
 *    by the failover (a retried rotation is a retry within the grace window, not reuse).
 * A rotation acknowledged by a master that died before replicating it is lost (replication is
 * asynchronous); the client then holds a token one generation ahead of the store. That case is
 * recognised exactly (store generation = client generation - 1, family live), counted and
 * reported, never mistaken for corruption.
 */
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { startRedisCluster, startRedisSentinel } from '@gatehouse/test-harness'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { basic, createRuntimeWhenReachable, form, LogCapture } from '../helpers.js'

const CLIENTS = 16

interface Stream {
  requests: number
  ok: number
  unavailable: number
  byStatus: Map<number, number>
  /** presented token → the successor it got */
  successors: Map<string, string>
  forks: string[]
  /** family id → the client's current token */
  current: Map<string, string>
  /** families whose client got invalid_grant (a lost acknowledged rotation, or worse) */
  rejected: Map<string, { token: string; body: string }>
  /** 503 answers that are not RFC 6749 §5.2 temporarily_unavailable with no-store */
  malformed503: string[]
}

function generationOf(token: string): number {
  return Number(token.split('.')[1])
}

async function refresh(app: FastifyInstance, refreshToken: string) {
  return await app.inject({
    method: 'POST',
    url: '/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') },
    payload: form({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  })
}

async function waitReady(app: FastifyInstance, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
    if (Date.now() > deadline) throw new Error('the auth app never became ready')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function runFailover(t: Test, env: Record<string, string>, killMaster: () => Promise<unknown>): Promise<void> {
  // LOGIN_MAX_ATTEMPTS: room for the parallel logins of one user that open the families.
  const config = await loadConfig({ LOG_LEVEL: 'warn', COOKIE_SECRET: randomBytes(32).toString('base64url'), LOGIN_MAX_ATTEMPTS: '1000', ...env })
  const logs = new LogCapture()
  // The users are seeded into Redis at start: retry until the first connection is up.
  const runtime = await createRuntimeWhenReachable(config)
  const app = await buildApp(runtime.deps, { logStream: logs })
  t.teardown(async () => {
    await app.close()
    await runtime.close()
  })
  await waitReady(app)

  const s: Stream = { requests: 0, ok: 0, unavailable: 0, byStatus: new Map(), successors: new Map(), forks: [], current: new Map(), rejected: new Map(), malformed503: [] }
  const logins = await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') },
        payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }),
      })
      if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
      return (res.json() as { refresh_token: string }).refresh_token
    }),
  )
  for (const tok of logins) s.current.set(tok.split('.')[0]!, tok)

  let phase: 'before' | 'failover' | 'after' = 'before'
  let afterFailoverOk = 0
  /** Families whose last answer was a 503: their client still holds the token it presented. */
  const unanswered = new Set<string>()
  /** One refresh of a family with the token its client holds, and what the client makes of the answer. */
  const refreshOnce = async (familyId: string): Promise<void> => {
    const presented = s.current.get(familyId)!
    const res = await refresh(app, presented)
    s.requests++
    s.byStatus.set(res.statusCode, (s.byStatus.get(res.statusCode) ?? 0) + 1)
    unanswered.delete(familyId)
    if (res.statusCode === 200) {
      s.ok++
      if (phase === 'after') afterFailoverOk++
      const next = (res.json() as { refresh_token: string }).refresh_token
      const earlier = s.successors.get(presented)
      if (earlier !== undefined && earlier !== next) s.forks.push(presented)
      s.successors.set(presented, next)
      s.current.set(familyId, next)
    } else if (res.statusCode === 503) {
      s.unavailable++
      unanswered.add(familyId)
      if ((res.json() as { error?: string }).error !== 'temporarily_unavailable' || res.headers['cache-control'] !== 'no-store') s.malformed503.push(res.body)
      // A client retries the same token (the grace window makes that safe, DESIGN §5).
      await new Promise((resolve) => setTimeout(resolve, 50))
    } else {
      s.rejected.set(familyId, { token: presented, body: `${res.statusCode} ${res.body}` })
    }
  }
  const worker = async (familyId: string): Promise<void> => {
    while (phase !== 'after' || afterFailoverOk < CLIENTS * 5) {
      if (s.rejected.has(familyId)) return
      await refreshOnce(familyId)
    }
  }
  const workers = Array.from(s.current.keys(), (id) => worker(id))

  // Kill the master once the stream is flowing (an event, not a delay).
  const flowing = Date.now() + 20_000
  while (s.ok < CLIENTS * 5) {
    if (Date.now() > flowing) throw new Error('the refresh stream never got going')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const beforeKill = s.requests
  phase = 'failover'
  const started = Date.now()
  await killMaster()
  t.comment(`failover took ${Date.now() - started} ms`)
  phase = 'after'
  const done = Promise.all(workers)
  const bounded = await Promise.race([done.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 60_000).unref())])
  t.ok(bounded, 'the stream recovered after the failover')
  phase = 'after'
  afterFailoverOk = Number.POSITIVE_INFINITY // stop any worker still running
  await done
  // A client whose last answer was a 503 retries its token before it is compared, as any client
  // would: the rotation it asked for may have been stored before the store failed, and the grace
  // rule answers the retry with that successor.
  for (const familyId of [...unanswered]) {
    for (let i = 0; i < 100 && unanswered.has(familyId); i++) await refreshOnce(familyId)
  }

  t.comment(`requests ${s.requests} (${beforeKill} before the kill), 200: ${s.ok}, 503: ${s.unavailable}, statuses ${JSON.stringify(Object.fromEntries(s.byStatus))}`)
  t.notOk([...s.byStatus.keys()].some((code) => code >= 500 && code !== 503), 'no 500: the store failing over is 503 temporarily_unavailable')
  t.same(s.malformed503, [], 'every 503 is temporarily_unavailable (RFC 6749 §5.2) with Cache-Control: no-store')
  t.same(s.forks, [], 'no token got two different successors: no family forked')

  let lost = 0
  for (const [familyId, token] of s.current) {
    const family = await runtime.deps.families.get(familyId)
    if (family === null) {
      t.fail(`family ${familyId} vanished`)
      continue
    }
    t.equal(family.revoked, false, `family ${familyId} was not revoked by the failover`, { diagnostic: false })
    if (family.revoked && !logs.text.includes(familyId)) {
      // No request was answered `reused` for it: the revoking rotation came from a command whose
      // caller had already given up (timed out, answered 503) and that the client sent anyway.
      t.comment(`family ${familyId}: revoked at generation ${family.generation} by no request that was answered; the client holds generation ${generationOf(token)}`)
    }
    const rejected = s.rejected.get(familyId)
    if (rejected === undefined) {
      t.equal(family.generation, generationOf(token), `family ${familyId}: the store and the client agree on the generation`, { diagnostic: false })
    } else {
      // The only acceptable rejection: the master acknowledged a rotation and died before a replica had it.
      const lostWrite = !family.revoked && family.generation === generationOf(token) - 1
      if (lostWrite) lost++
      t.match(rejected.body, /^400 .*invalid_grant/, `family ${familyId}: rejected with invalid_grant`)
      t.ok(lostWrite, `family ${familyId}: rejected only because one acknowledged rotation was lost (store generation ${family.generation}, client ${generationOf(token)})`)
    }
  }
  t.comment(`${lost} of ${CLIENTS} families lost their last acknowledged rotation (asynchronous replication)`)
  t.notMatch(logs.text, /refresh_token\.reuse_detected/, 'no reuse detected: retries stayed retries')
  t.notMatch(logs.text, /"level":50/, 'no error-level log line (unexpected errors)')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, new RegExp(`gatehouse_store_errors_total ${s.unavailable}\\b`), 'every 503 is counted as a store error')
}

t.test('Sentinel: the master is killed during a stream of refreshes', async (t) => {
  const sentinel = await startRedisSentinel()
  t.teardown(() => sentinel.stop())
  await runFailover(t, { REDIS_SENTINELS: sentinel.sentinelsEnv, REDIS_SENTINEL_NAME: sentinel.name }, () => sentinel.killMaster())
})

t.test('Cluster: a master is killed during a stream of refreshes', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  await runFailover(t, { REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') }, () => cluster.killMaster())
})
