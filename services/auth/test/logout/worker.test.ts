import t, { type Test } from 'tap'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import type { ClientConfig } from '../../src/directory/config-file.js'
import { AuthMetrics } from '../../src/runtime/metrics.js'
import { postLogoutToken, MAX_RESPONSE_BYTES } from '../../src/logout/delivery.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/logout/logout-token.js'
import { QueuedBackchannelLogout } from '../../src/logout/queued-backchannel.js'
import { MemoryLogoutQueue } from '../../src/logout/queue.js'
import { BackchannelWorker, type BackchannelWorkerOptions } from '../../src/logout/worker.js'
import { makeApp, type TestApp } from '../helpers.js'
import { bounded, ManualTimers, Receiver, type Received } from './receiver.js'

const TIMEOUT_MS = 5000

/** Audit lines as the worker writes them. */
class Lines {
  readonly all: Array<Record<string, unknown> & { level: string }> = []
  info = (obj: Record<string, unknown>): void => void this.all.push({ level: 'info', ...obj })
  warn = (obj: Record<string, unknown>): void => void this.all.push({ level: 'warn', ...obj })
  events(name: string): Record<string, unknown>[] {
    return this.all.filter((l) => l.event === name)
  }
}

function bclClient(id: string, uri: string | undefined, extra: Partial<ClientConfig> = {}): ClientConfig {
  return {
    client_id: id,
    token_endpoint_auth_method: 'client_secret_basic',
    client_secret: `${id}-secret`,
    grant_types: ['authorization_code'],
    scope: 'openid',
    audience: 'api',
    redirect_uris: ['https://rp.example/cb'],
    post_logout_redirect_uris: [],
    jwks: null,
    ...(uri !== undefined ? { backchannel_logout_uri: uri } : {}),
    ...extra,
  }
}

interface Fixture {
  env: TestApp
  receiver: Receiver
  queue: MemoryLogoutQueue
  timers: ManualTimers
  lines: Lines
  metrics: AuthMetrics
  worker: BackchannelWorker
  backchannel: QueuedBackchannelLogout
  jwks: ReturnType<typeof createLocalJWKSet>
}

async function fixture(t: Test, options: Partial<BackchannelWorkerOptions> = {}): Promise<Fixture> {
  const env = await makeApp()
  t.teardown(() => env.close())
  const receiver = await Receiver.start()
  t.teardown(() => receiver.close())
  await env.deps.clients.add(bclClient('rp-web', receiver.url, { backchannel_logout_session_required: true }))
  await env.deps.clients.add(bclClient('rp-plain', undefined))
  const queue = new MemoryLogoutQueue({ clock: env.clock.now })
  const timers = new ManualTimers()
  const lines = new Lines()
  const metrics = new AuthMetrics({ defaultMetrics: false })
  const worker = new BackchannelWorker({
    queue,
    clients: env.deps.clients,
    keys: env.deps.keys,
    issuer: env.config.issuer,
    clock: env.clock.now,
    log: lines,
    metrics,
    timeoutMs: TIMEOUT_MS,
    retries: 3,
    timers,
    ...options,
  })
  t.teardown(() => worker.stop())
  const backchannel = new QueuedBackchannelLogout({ queue, clients: env.deps.clients, clock: env.clock.now, log: lines, metrics })
  const jwks = createLocalJWKSet((await env.app.inject({ method: 'GET', url: '/jwks.json' })).json<JSONWebKeySet>())
  return { env, receiver, queue, timers, lines, metrics, worker, backchannel, jwks }
}

async function outcomes(metrics: AuthMetrics): Promise<Record<string, number>> {
  const m = await metrics.backchannelLogout.get()
  return Object.fromEntries(m.values.map((v) => [String(v.labels.outcome), v.value]))
}

/** The logout token of a request, verified as a relying party would (Back-Channel Logout §2.6). */
async function verified(f: Fixture, r: Received): Promise<{ payload: JWTPayload; kid: string | undefined }> {
  const form = new URLSearchParams(r.body)
  const token = form.get('logout_token')
  if (token === null) throw new Error('no logout_token')
  const { payload, protectedHeader } = await jwtVerify(token, f.jwks, {
    issuer: f.env.config.issuer,
    audience: 'rp-web',
    typ: 'logout+jwt',
    algorithms: ['RS256'],
    currentDate: new Date(f.env.clock.now()),
  })
  return { payload, kid: protectedHeader.kid }
}

t.test('a real receiver gets a logout token that verifies against the JWKS', async (t) => {
  const f = await fixture(t)
  await f.backchannel.sessionEnded({ sid: 'sid-1', sub: 'u_alice', clientIds: ['rp-web', 'rp-plain', 'nobody', 'rp-web'] })
  t.equal(await f.queue.size(), 1, 'one job: clients without a URI, unknown ones and repeats are skipped')
  t.match(f.lines.events('backchannel_logout.queued'), [{ client_id: 'rp-web', sid: 'sid-1' }])

  t.equal(await f.worker.tick(), 1)
  const [r] = await f.receiver.received(1)
  t.equal(r?.method, 'POST')
  t.equal(r?.url, '/backchannel-logout')
  t.equal(r?.headers['content-type'], 'application/x-www-form-urlencoded')
  t.same([...new URLSearchParams(r!.body).keys()], ['logout_token'], 'one parameter (§2.5)')

  const { payload, kid } = await verified(f, r!)
  t.ok(f.env.deps.keys.current().jwks.keys.some((k) => k.kid === kid), 'signed by a published key')
  t.equal(payload.iss, f.env.config.issuer)
  t.equal(payload.aud, 'rp-web')
  t.equal(payload.sub, 'u_alice')
  t.equal(payload.sid, 'sid-1')
  t.same(payload.events, { [BACKCHANNEL_LOGOUT_EVENT]: {} })
  t.type(payload.jti, 'string')
  t.ok((payload.jti as string).length >= 16)
  t.equal(payload.iat, Math.floor(f.env.clock.now() / 1000))
  t.ok(payload.exp! - payload.iat! <= 120 && payload.exp! > payload.iat!, `exp - iat = ${payload.exp! - payload.iat!} (at most 2 minutes)`)
  t.notOk('nonce' in payload, 'no nonce (§2.4)')
  t.equal(decodeProtectedHeader(new URLSearchParams(r!.body).get('logout_token')!).alg, 'RS256')

  t.equal(await f.queue.size(), 0, 'delivered jobs leave the queue')
  t.same(await outcomes(f.metrics), { delivered: 1 })
  t.match(f.lines.events('backchannel_logout.delivered'), [{ client_id: 'rp-web', sid: 'sid-1', sub: 'u_alice', attempts: 1, status: 200 }])
  t.notOk(JSON.stringify(f.lines.all).includes(new URLSearchParams(r!.body).get('logout_token')!.split('.')[2]!), 'the token is never logged')
  t.equal(f.timers.pending.size, 0, 'the attempt timeout was cleared')
})

t.test('the token checks a relying party makes fail on a token for another client or a wrong typ', async (t) => {
  const f = await fixture(t)
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  await f.worker.tick()
  const [r] = await f.receiver.received(1)
  const token = new URLSearchParams(r!.body).get('logout_token')!
  const at = { currentDate: new Date(f.env.clock.now()) }
  await t.rejects(jwtVerify(token, f.jwks, { ...at, audience: 'other' }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' })
  await t.rejects(jwtVerify(token, f.jwks, { ...at, typ: 'JWT' }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' })
  await t.rejects(jwtVerify(token, f.jwks, { currentDate: new Date(f.env.clock.now() + 121_000) }), { code: 'ERR_JWT_EXPIRED' })
})

t.test('failures are retried with exponential backoff, each with a fresh token, then given up', async (t) => {
  const f = await fixture(t, { retries: 3, backoffMs: 10_000 })
  f.receiver.handler = (_r, res) => res.writeHead(503).end('down')
  await f.backchannel.sessionEnded({ sid: 'sid-r', sub: 'u_bob', clientIds: ['rp-web'] })

  const schedule: number[] = []
  const start = f.env.clock.now()
  for (const wait of [0, 10_000, 20_000, 40_000]) {
    f.env.clock.ms += wait - 1
    t.equal(await f.worker.tick(), 0, `nothing due ${wait - 1} ms after the previous attempt`)
    f.env.clock.ms += 1
    t.equal(await f.worker.tick(), 1, `attempt due ${wait} ms after the previous one`)
    schedule.push(f.env.clock.now() - start)
  }
  t.same(schedule, [0, 10_000, 30_000, 70_000], 'the first attempt, then 3 retries after 10 s, 20 s, 40 s')
  const requests = await f.receiver.received(4)
  const jtis = await Promise.all(requests.map(async (r) => (await verified(f, r)).payload.jti))
  t.equal(new Set(jtis).size, 4, 'every attempt carries a freshly minted, unexpired token')

  t.equal(await f.queue.size(), 0, 'given up after the last retry')
  f.env.clock.ms += 3_600_000
  t.equal(await f.worker.tick(), 0, 'and never tried again')
  t.same(await outcomes(f.metrics), { retry: 3, failed: 1 })
  t.match(f.lines.events('backchannel_logout.retry'), [
    { attempts: 1, reason: 'status', status: 503, retry_in_ms: 10_000 },
    { attempts: 2, retry_in_ms: 20_000 },
    { attempts: 3, retry_in_ms: 40_000 },
  ])
  t.match(f.lines.events('backchannel_logout.failed'), [{ client_id: 'rp-web', sid: 'sid-r', attempts: 4, reason: 'status', status: 503, level: 'warn' }])
})

t.test('a receiver that recovers gets the retry', async (t) => {
  const f = await fixture(t, { retries: 2 })
  let calls = 0
  f.receiver.handler = (_r, res) => res.writeHead(++calls === 1 ? 500 : 204).end()
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  await f.worker.tick()
  f.env.clock.ms += 10_000
  await f.worker.tick()
  t.same(await outcomes(f.metrics), { retry: 1, delivered: 1 })
  t.match(f.lines.events('backchannel_logout.delivered'), [{ attempts: 2, status: 204 }])
  t.equal(await f.queue.size(), 0)
})

t.test('a hanging receiver: the attempt ends at BACKCHANNEL_LOGOUT_TIMEOUT and is retried', async (t) => {
  const f = await fixture(t)
  f.receiver.handler = () => undefined // never answers
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  const tick = f.worker.tick()
  await f.receiver.received(1)
  t.same([...f.timers.pending.values()].map((p) => p.ms), [TIMEOUT_MS], 'one timer: the attempt timeout')
  t.equal(f.timers.fire(TIMEOUT_MS), 1)
  t.equal(await bounded(tick), 1)
  t.match(f.lines.events('backchannel_logout.retry'), [{ reason: 'timeout', attempts: 1 }])
  t.same(await outcomes(f.metrics), { retry: 1 })
})

t.test('a redirect is a failure and is not followed', async (t) => {
  const f = await fixture(t)
  const elsewhere = await Receiver.start()
  t.teardown(() => elsewhere.close())
  f.receiver.handler = (_r, res) => res.writeHead(307, { location: elsewhere.url }).end()
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  await f.worker.tick()
  t.match(f.lines.events('backchannel_logout.retry'), [{ reason: 'status', status: 307 }])
  t.equal(elsewhere.requests.length, 0, 'the redirect target got nothing')
})

t.test('a receiver streaming an endless body: the answer is read only up to a bound', async (t) => {
  const f = await fixture(t)
  f.receiver.handler = (_r, res) => {
    res.writeHead(200)
    res.write(Buffer.alloc(MAX_RESPONSE_BYTES * 4, 'x')) // and never ends
  }
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  t.equal(await bounded(f.worker.tick()), 1, 'settled without the timeout firing')
  t.same(await outcomes(f.metrics), { delivered: 1 })
})

t.test('a client deleted (or its URI removed) since the session ended is dropped', async (t) => {
  const f = await fixture(t)
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  await f.env.deps.clients.delete('rp-web')
  await f.worker.tick()
  t.equal(f.receiver.requests.length, 0)
  t.equal(await f.queue.size(), 0)
  t.match(f.lines.events('backchannel_logout.dropped'), [{ client_id: 'rp-web', reason: 'client_not_registered' }])
})

t.test('a job whose last attempt was claimed by a replica that died is given up, not sent again', async (t) => {
  const f = await fixture(t, { retries: 1 })
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  // Two claims whose holders died: attempts 1 and 2 (the last allowed) were started.
  await f.queue.claim(f.env.clock.now(), 10, 1, 'dead-1')
  f.env.clock.ms += 1
  await f.queue.claim(f.env.clock.now(), 10, 1, 'dead-2')
  f.env.clock.ms += 1
  t.equal(await f.worker.tick(), 1)
  t.equal(f.receiver.requests.length, 0)
  t.match(f.lines.events('backchannel_logout.failed'), [{ reason: 'abandoned', attempts: 2 }])
  t.equal(await f.queue.size(), 0)
})

t.test('a full queue refuses the job and says so; the session still ends', async (t) => {
  const f = await fixture(t)
  const queue = new MemoryLogoutQueue({ maxJobs: 1 })
  const backchannel = new QueuedBackchannelLogout({ queue, clients: f.env.deps.clients, clock: f.env.clock.now, log: f.lines, metrics: f.metrics })
  await backchannel.sessionEnded({ sid: 's1', sub: 'u', clientIds: ['rp-web'] })
  await backchannel.sessionEnded({ sid: 's2', sub: 'u', clientIds: ['rp-web'] })
  t.equal(await queue.size(), 1)
  t.match(f.lines.events('backchannel_logout.dropped'), [{ sid: 's2', reason: 'queue_full', level: 'warn' }])
  t.same(await outcomes(f.metrics), { dropped: 1 })
})

t.test('start polls on its timer; stop clears it and aborts the attempt in flight, leaving the job leased', async (t) => {
  const f = await fixture(t, { pollIntervalMs: 1000 })
  f.receiver.handler = () => undefined
  f.worker.start()
  t.same([...f.timers.pending.values()].map((p) => p.ms), [1000], 'the poll timer')
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  f.timers.fire(1000)
  await f.receiver.received(1)
  await f.worker.stop()
  t.equal(f.timers.pending.size, 0, 'no timer left behind')
  t.equal(await f.queue.size(), 1, 'the job stays, for another replica once the lease ends')
  t.equal(f.lines.events('backchannel_logout.retry').length + f.lines.events('backchannel_logout.failed').length, 0, 'an aborted attempt is not a failure')
  t.same(await f.queue.claim(f.env.clock.now(), 10, 1, 'x'), [], 'still leased')
  t.equal((await f.queue.claim(f.env.clock.now() + TIMEOUT_MS + 30_000, 10, 1, 'x')).length, 1, 'due again when the lease ends')
})

t.test('worker options are checked, naming each', async (t) => {
  const f = await fixture(t)
  const base = { queue: f.queue, clients: f.env.deps.clients, keys: f.env.deps.keys, issuer: 'x', clock: Date.now, log: f.lines }
  t.throws(() => new BackchannelWorker({ ...base, timeoutMs: 0, retries: -1 }), /timeoutMs must be a positive integer; retries must be a non-negative integer/)
})

t.test('postLogoutToken: an unreachable receiver is a network failure, and the token is not in the result', async (t) => {
  const r = await Receiver.start()
  const url = r.url
  await r.close()
  const result = await postLogoutToken(url, 'secret.token.value', { timeoutMs: 5000 })
  t.same(result, { ok: false, reason: 'network' })
})

t.test('an unavailable queue is reported once, not at every poll, and its recovery once', async (t) => {
  const f = await fixture(t)
  let down = true
  const queue = {
    enqueue: f.queue.enqueue.bind(f.queue),
    claim: async (...a: Parameters<MemoryLogoutQueue['claim']>) => {
      if (down) throw new Error('redis: logout queue claim failed: connection is closed')
      return await f.queue.claim(...a)
    },
    complete: f.queue.complete.bind(f.queue),
    reschedule: f.queue.reschedule.bind(f.queue),
    size: f.queue.size.bind(f.queue),
  }
  const worker = new BackchannelWorker({ queue, clients: f.env.deps.clients, keys: f.env.deps.keys, issuer: f.env.config.issuer, clock: f.env.clock.now, log: f.lines, timeoutMs: TIMEOUT_MS, retries: 1, timers: f.timers })
  for (let i = 0; i < 3; i++) t.equal(await worker.tick(), 0)
  t.equal(f.lines.events('backchannel_logout.queue_unavailable').length, 1)
  down = false
  await f.backchannel.sessionEnded({ sid: 's', sub: 'u', clientIds: ['rp-web'] })
  t.equal(await worker.tick(), 1)
  await worker.tick()
  t.equal(f.lines.events('backchannel_logout.queue_available').length, 1)
  t.equal(f.receiver.requests.length, 1, 'delivered once it answered')
})
