/**
 * The auth service when its one Redis (standalone) goes away and comes back (DESIGN §3, §9):
 *  - stopped: every endpoint that needs the store answers 503 temporarily_unavailable (JSON
 *    for the OAuth endpoints, a page for the browser ones), never a 500; /readyz fails, /healthz,
 *    the JWKS and discovery keep answering;
 *  - frozen (SIGSTOP, a hung host): the same, each request ending within the Redis command
 *    timeout instead of hanging;
 *  - back (restarted from its append-only file, or thawed): everything works again without a
 *    restart of the service;
 *  - killed (SIGKILL) in the middle of a stream of rotations: afterwards every family is intact —
 *    not revoked, not forked — and presenting the last refresh token its client received either
 *    rotates or is a retry within the grace window (DESIGN §5) that yields the same successor.
 * The service's clock is a ManualClock that stands still, so the grace window is not a race.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { parseInfo, startRedis, type RedisServer, ManualClock } from '@gatehouse/test-harness'
import { buildApp } from '../../src/app.js'
import { createRuntime, type Runtime } from '../../src/runtime/bootstrap.js'
import { loadConfig } from '../../src/config.js'
import { s256 } from '../../src/authorize/pkce.js'
import { basic, form, LogCapture } from '../helpers.js'

/** createRedis's default command timeout (store/redis-connection.ts), which bounds every request. */
const COMMAND_TIMEOUT_MS = 1000
const REQUEST_BOUND_MS = 2 * COMMAND_TIMEOUT_MS + 1000
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const CLI = basic('cli', 'cli-secret')
const WEB = basic('web', 'web-secret')

interface Harness {
  app: FastifyInstance
  runtime: Runtime
  redis: RedisServer
  clock: ManualClock
  logs: LogCapture
}

/**
 * A private redis-server that keeps its data across restarts (append-only file, fsync on every
 * write, in a directory of ours: the later --dir wins over the harness's), and the auth app on it.
 */
async function start(t: Test): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-outage-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const redis = await startRedis({ args: ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always'] })
  t.teardown(() => redis.stop())
  const clock = new ManualClock()
  const config = await loadConfig({ LOG_LEVEL: 'info', REDIS_URL: redis.url, COOKIE_SECRET: 'outage-test-cookie-secret-0123456789abcdef' })
  let runtime: Runtime | undefined
  const deadline = Date.now() + 15_000
  while (runtime === undefined) {
    try {
      runtime = await createRuntime(config, { warn() {}, info() {} }, clock.now)
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const logs = new LogCapture()
  const app = await buildApp(runtime.deps, { logStream: logs })
  await app.ready()
  const rt = runtime
  t.teardown(async () => {
    await app.close()
    await rt.close()
  })
  const h = { app, runtime, redis, clock, logs }
  await waitReady(h)
  return h
}

async function waitReady(h: Harness, timeoutMs = 15_000): Promise<number> {
  const started = Date.now()
  while ((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
    if (Date.now() - started > timeoutMs) throw new Error('the auth app never became ready again')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return Date.now() - started
}

/** SIGKILL, by its pid (INFO server): no shutdown, no last write. */
async function killRedis(redis: RedisServer): Promise<void> {
  const c = await redis.client()
  const pid = Number(parseInfo(await c.call('INFO', 'server')).process_id)
  await c.close()
  process.kill(pid, 'SIGKILL')
  const deadline = Date.now() + 5000
  for (;;) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    if (Date.now() > deadline) throw new Error('redis-server did not die')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function passwordLogin(app: FastifyInstance) {
  return await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: CLI }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid profile' }) })
}

async function refresh(app: FastifyInstance, refreshToken: string) {
  return await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, authorization: CLI }, payload: form({ grant_type: 'refresh_token', refresh_token: refreshToken }) })
}

const AUTHORIZE = '/authorize?' + new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: 'http://127.0.0.1:3000/callback', scope: 'openid', code_challenge: s256('v'.repeat(43)), code_challenge_method: 'S256' })

/**
 * One request to every endpoint, each needing the store in its own way. `cacheable`: it may be
 * answered from the replica's directory cache (directory-cache.ts) when that is warm, so 200 is
 * as right as 503 there; everything else cannot be answered without Redis.
 */
function everyEndpoint(tokens: { access_token: string; refresh_token: string; id_token: string }): { name: string; json: boolean; cacheable?: boolean; req: InjectOptions }[] {
  return [
    { name: 'password grant', json: true, req: { method: 'POST', url: '/token', headers: { ...FORM, authorization: CLI }, payload: form({ grant_type: 'password', username: 'alice', password: 'alice-password' }) } },
    { name: 'refresh grant', json: true, req: { method: 'POST', url: '/token', headers: { ...FORM, authorization: CLI }, payload: form({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }) } },
    { name: 'client credentials', json: true, cacheable: true, req: { method: 'POST', url: '/token', headers: { ...FORM, authorization: basic('reporting-service', 'reporting-secret') }, payload: form({ grant_type: 'client_credentials' }) } },
    { name: 'authorization code', json: true, req: { method: 'POST', url: '/token', headers: { ...FORM, authorization: WEB }, payload: form({ grant_type: 'authorization_code', code: 'c'.repeat(43), redirect_uri: 'http://127.0.0.1:3000/callback', code_verifier: 'v'.repeat(43) }) } },
    { name: 'revoke', json: true, req: { method: 'POST', url: '/revoke', headers: { ...FORM, authorization: CLI }, payload: form({ token: tokens.refresh_token }) } },
    { name: 'introspect', json: true, req: { method: 'POST', url: '/introspect', headers: { ...FORM, authorization: WEB }, payload: form({ token: tokens.access_token }) } },
    { name: 'userinfo', json: true, req: { method: 'GET', url: '/userinfo', headers: { authorization: `Bearer ${tokens.access_token}` } } },
    { name: 'authorize', json: false, cacheable: true, req: { method: 'GET', url: AUTHORIZE } },
    // Without a session cookie there is nothing to end (an ID token alone ends nothing): only the client is looked up.
    { name: 'logout', json: false, cacheable: true, req: { method: 'GET', url: `/logout?id_token_hint=${tokens.id_token}` } },
  ]
}

function assertUnavailable(t: Test, name: string, json: boolean, res: LightMyRequestResponse, cacheable = false): void {
  if (cacheable && res.statusCode === 200) {
    t.pass(`${name}: answered from the directory cache`)
    return
  }
  t.equal(res.statusCode, 503, `${name}: 503`)
  t.equal(res.headers['cache-control'], 'no-store', `${name}: no-store`)
  if (json) t.same(res.json(), { error: 'temporarily_unavailable', error_description: res.json().error_description }, `${name}: RFC 6749 §5.2 temporarily_unavailable`)
  else t.match(res.headers['content-type'], /^text\/html/, `${name}: a page`)
}

async function timed(app: FastifyInstance, req: InjectOptions): Promise<{ res: LightMyRequestResponse; ms: number }> {
  const started = Date.now()
  const res = await app.inject(req)
  return { res, ms: Date.now() - started }
}

t.test('Redis stopped: 503 everywhere the store is needed, readiness fails; restarted: everything recovers', async (t) => {
  const h = await start(t)
  const login = await passwordLogin(h.app)
  t.equal(login.statusCode, 200)
  const tokens = login.json()

  await h.redis.stop()
  for (const { name, json, cacheable, req } of everyEndpoint(tokens)) {
    const { res, ms } = await timed(h.app, req)
    assertUnavailable(t, name, json, res, cacheable)
    t.ok(ms < REQUEST_BOUND_MS, `${name}: answered in ${ms} ms`)
  }
  const ready = await h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, '/readyz fails while Redis is away')
  t.match(ready.json(), { status: 'unavailable', checks: { store: 'unavailable' } })
  for (const url of ['/healthz', '/jwks.json', '/.well-known/openid-configuration', '/metrics']) {
    t.equal((await h.app.inject({ method: 'GET', url })).statusCode, 200, `${url} still answers`)
  }

  await h.redis.restart()
  t.comment(`ready again ${await waitReady(h)} ms after the restart`)
  const again = await refresh(h.app, tokens.refresh_token)
  t.equal(again.statusCode, 200, 'the family outlived the outage (nothing was half-done)')
  t.equal((await passwordLogin(h.app)).statusCode, 200, 'logins work again')
  t.notMatch(h.logs.text, /"level":50/, 'no error-level log line')
  t.match((await h.app.inject({ method: 'GET', url: '/metrics' })).body, /gatehouse_store_errors_total [1-9]/, 'the 503s were counted')
})

t.test('Redis frozen (SIGSTOP): requests end within the command timeout, then it recovers', async (t) => {
  const h = await start(t)
  const tokens = (await passwordLogin(h.app)).json()
  h.redis.pause()
  t.teardown(() => h.redis.resume())
  const all = everyEndpoint(tokens)
  // In parallel, as traffic would be: none waits for another's timeout.
  const results = await Promise.all(all.map(async ({ req }) => await timed(h.app, req)))
  results.forEach(({ res, ms }, i) => {
    assertUnavailable(t, all[i]!.name, all[i]!.json, res, all[i]!.cacheable)
    t.ok(ms < REQUEST_BOUND_MS, `${all[i]!.name}: ended after ${ms} ms`)
  })
  const ready = await timed(h.app, { method: 'GET', url: '/readyz' })
  t.equal(ready.res.statusCode, 503)
  t.ok(ready.ms < REQUEST_BOUND_MS, `/readyz ended after ${ready.ms} ms`)

  h.redis.resume()
  await waitReady(h)
  const rotated = await refresh(h.app, tokens.refresh_token)
  t.equal(rotated.statusCode, 200, 'the family is usable after the freeze')
  t.equal((await passwordLogin(h.app)).statusCode, 200)
})

t.test('Redis killed during a stream of rotations: every family ends consistent, no 500', async (t) => {
  const h = await start(t)
  const FAMILIES = 8
  const current = new Map<string, string>()
  for (let i = 0; i < FAMILIES; i++) {
    const res = await passwordLogin(h.app)
    t.equal(res.statusCode, 200)
    const rt = res.json().refresh_token as string
    current.set(rt.split('.')[0]!, rt)
  }
  const statuses = new Map<number, number>()
  const successors = new Map<string, string>()
  const forks: string[] = []
  let ok = 0
  let stop = false
  const worker = async (familyId: string) => {
    while (!stop) {
      const presented = current.get(familyId)!
      const { res, ms } = await timed(h.app, { method: 'POST', url: '/token', headers: { ...FORM, authorization: CLI }, payload: form({ grant_type: 'refresh_token', refresh_token: presented }) })
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
      if (ms >= REQUEST_BOUND_MS) statuses.set(-1, (statuses.get(-1) ?? 0) + 1)
      if (res.statusCode === 200) {
        ok++
        const next = res.json().refresh_token as string
        const earlier = successors.get(presented)
        if (earlier !== undefined && earlier !== next) forks.push(presented)
        successors.set(presented, next)
        current.set(familyId, next)
      } else {
        // 503: the client keeps the token it has and tries again a little later.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }
  const workers = [...current.keys()].map((id) => worker(id))
  const flowing = Date.now() + 15_000
  while (ok < FAMILIES * 5) {
    if (Date.now() > flowing) throw new Error('the rotation stream never got going')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await killRedis(h.redis)
  const unavailableFrom = statuses.get(503) ?? 0
  const outage = Date.now() + 10_000
  while ((statuses.get(503) ?? 0) < unavailableFrom + FAMILIES && Date.now() < outage) await new Promise((resolve) => setTimeout(resolve, 5))
  await h.redis.restart()
  await waitReady(h)
  const okBefore = ok
  const recovered = Date.now() + 15_000
  while (ok < okBefore + FAMILIES * 3 && Date.now() < recovered) await new Promise((resolve) => setTimeout(resolve, 5))
  stop = true
  await Promise.all(workers)

  t.comment(`statuses ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.ok((statuses.get(503) ?? 0) > 0, 'the outage was seen (503s)')
  t.notOk([...statuses.keys()].some((s) => s !== 200 && s !== 503), 'only 200 and 503: no 500, no invalid_grant')
  t.same(forks, [], 'no token got two different successors')
  for (const [familyId, token] of current) {
    const family = await h.runtime.deps.families.get(familyId)
    t.ok(family !== null && !family.revoked, `family ${familyId} is live`, { diagnostic: false })
    // Equal, or one ahead when Redis stored a rotation whose answer died with it: the client
    // then holds the immediate predecessor, which the grace rule turns into a retry (below).
    const lag = (family?.generation ?? -1) - Number(token.split('.')[1])
    t.ok(lag === 0 || lag === 1, `family ${familyId}: the store and the client agree (lag ${lag})`, { diagnostic: false })
    const next = await refresh(h.app, token)
    t.equal(next.statusCode, 200, `family ${familyId}: the last token the client holds still rotates`, { diagnostic: false })
  }
  t.notMatch(h.logs.text, /refresh_token\.reuse_detected/, 'no reuse detected: retries of a lost answer were retries')
  t.notMatch(h.logs.text, /"level":50/, 'no error-level log line')
})

t.test('killed right after a rotation was stored but before its answer: the retry gets the same successor', async (t) => {
  const h = await start(t)
  const first = (await passwordLogin(h.app)).json().refresh_token as string
  const familyId = first.split('.')[0]!
  // The rotation is stored (fsync'd) but the client never saw its answer.
  const lost = await h.runtime.deps.families.rotate(first, { clientId: 'cli' })
  t.equal(lost.status, 'rotated')
  await killRedis(h.redis)
  const during = await refresh(h.app, first)
  t.equal(during.statusCode, 503)
  await h.redis.restart()
  await waitReady(h)
  const retried = await refresh(h.app, first)
  t.equal(retried.statusCode, 200, 'the predecessor within the grace window is a retry')
  t.equal(retried.json().refresh_token, lost.status === 'rotated' ? lost.refreshToken : '', 'the same successor, not a fork')
  t.equal((await h.runtime.deps.families.get(familyId))?.generation, 1, 'one generation, as the client now holds')
  t.equal((await refresh(h.app, retried.json().refresh_token)).statusCode, 200, 'and the chain goes on')
})
