import { randomBytes } from 'node:crypto'
import t from 'tap'
import { jwtVerify, createLocalJWKSet } from 'jose'
import { startRedis, ManualClock } from '@gatehouse/test-harness'
import { MemoryClientDirectory } from '../../src/directory/clients.js'
import { generateDevKeySet, KeyRing } from '../../src/keys/signing-keys.js'
import { QueuedBackchannelLogout } from '../../src/logout/queued-backchannel.js'
import { RedisLogoutQueue } from '../../src/logout/redis-logout-queue.js'
import { BackchannelWorker } from '../../src/logout/worker.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { ManualTimers, Receiver } from './receiver.js'

/**
 * DESIGN §10.1 / issue 12: the queue survives a replica restart. Each "replica" is its own Redis
 * connection, queue and worker over the same Redis; replica A stops (or dies mid-attempt) and a
 * new replica B delivers the job.
 */
const server = await startRedis()
t.teardown(() => server.stop())
const ISSUER = 'http://127.0.0.1:4000'
const TIMEOUT_MS = 5000
const keys = new KeyRing(await generateDevKeySet())
const jwks = createLocalJWKSet(keys.current().jwks)

async function replica(t: import('tap').Test, keyPrefix: string, clock: ManualClock, clients: MemoryClientDirectory) {
  const redis = createRedis({ url: server.url, commandTimeoutMs: 2000 })
  await waitForRedis(redis)
  const queue = new RedisLogoutQueue({ redis, keyPrefix, clock: clock.now })
  const log = { info: () => undefined, warn: () => undefined }
  const timers = new ManualTimers()
  const worker = new BackchannelWorker({ queue, clients, keys, issuer: ISSUER, clock: clock.now, log, timeoutMs: TIMEOUT_MS, retries: 5, timers })
  const backchannel = new QueuedBackchannelLogout({ queue, clients, clock: clock.now, log })
  let closed = false
  const stop = async (): Promise<void> => {
    if (closed) return
    closed = true
    await worker.stop()
    redis.disconnect()
  }
  t.teardown(stop)
  return { queue, worker, backchannel, timers, stop }
}

async function setup(t: import('tap').Test) {
  const receiver = await Receiver.start()
  t.teardown(() => receiver.close())
  const clients = new MemoryClientDirectory([
    { client_id: 'rp', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], scope: 'openid', audience: 'api', redirect_uris: ['https://rp/cb'], post_logout_redirect_uris: [], jwks: null, backchannel_logout_uri: receiver.url },
  ])
  return { receiver, clients, clock: new ManualClock(), keyPrefix: `t${randomBytes(4).toString('hex')}:` }
}

async function sidOf(body: string, clock: ManualClock): Promise<unknown> {
  const { payload } = await jwtVerify(new URLSearchParams(body).get('logout_token')!, jwks, { issuer: ISSUER, audience: 'rp', typ: 'logout+jwt', currentDate: new Date(clock.now()) })
  return payload.sid
}

t.test('a job queued by a replica that stops before delivering is delivered by a new one', async (t) => {
  const { receiver, clients, clock, keyPrefix } = await setup(t)
  const a = await replica(t, keyPrefix, clock, clients)
  await a.backchannel.sessionEnded({ sid: 'sid-a', sub: 'u', clientIds: ['rp'] })
  await a.stop()

  const b = await replica(t, keyPrefix, clock, clients)
  t.equal(await b.worker.tick(), 1)
  const [r] = await receiver.received(1)
  t.equal(await sidOf(r!.body, clock), 'sid-a')
  t.equal(await b.queue.size(), 0)
})

t.test('a replica that dies mid-attempt: its job is due again when the lease ends, and only then', async (t) => {
  const { receiver, clients, clock, keyPrefix } = await setup(t)
  receiver.handler = () => undefined // A's attempt hangs
  const a = await replica(t, keyPrefix, clock, clients)
  await a.backchannel.sessionEnded({ sid: 'sid-b', sub: 'u', clientIds: ['rp'] })
  const ticking = a.worker.tick()
  await receiver.received(1)
  await a.stop() // the attempt is aborted; the job stays leased in Redis
  await ticking

  receiver.handler = (_r, res) => res.writeHead(200).end()
  const b = await replica(t, keyPrefix, clock, clients)
  t.equal(await b.worker.tick(), 0, 'A still holds the lease: B does not send it concurrently')
  clock.ms += TIMEOUT_MS + 30_000
  t.equal(await b.worker.tick(), 1, 'the lease ended: B claims it')
  const requests = await receiver.received(2)
  t.equal(await sidOf(requests[1]!.body, clock), 'sid-b')
  t.equal(await b.queue.size(), 0)
})
