import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { REVOCATION_CHANNEL, decodeRevocation } from '../../packages/service-kit/src/revocation.js'
import { serveRuns } from './children.js'

/**
 * Many revocation-feed subscribers in one process (the fanout scenario): `count` ioredis
 * connections, each in subscriber mode on REVOCATION_CHANNEL, as the verifier's feed connection
 * (packages/verifier/src/revocation-feed.ts: same client, `SUBSCRIBE`, every message through
 * decodeRevocation); or, with `sharded`, `SSUBSCRIBE` (Redis 7 sharded pub/sub) on the node that
 * owns the channel's slot. The feed's second connection (the recent-set reader) carries nothing
 * per message and is left out. Each message's `sid` is `bench-<seq>`; the worker tells the parent
 * when every one of its connections has received publish `seq`, with the wall-clock time
 * (performance.timeOrigin + now, comparable across processes) the last one got it.
 */

// The verifier's own ioredis (the bench package does not depend on it directly).
const require = createRequire(new URL('../../packages/verifier/package.json', import.meta.url))

interface Subscriber {
  on(event: string, listener: (...args: string[]) => void): void
  subscribe(channel: string): Promise<unknown>
  ssubscribe(channel: string): Promise<unknown>
  disconnect(): void
}
const { Redis } = require('ioredis') as { Redis: new (opts: Record<string, unknown>) => Subscriber }

export interface SubscribeInput {
  op: 'subscribe'
  /** host:port of each connection's node, cycled. */
  nodes: string[]
  count: number
  sharded: boolean
}
export type WorkerInput = SubscribeInput | { op: 'close' }

const subs: Subscriber[] = []
const received = new Map<number, { count: number; last: number }>()
let expected = 0

const now = (): number => performance.timeOrigin + performance.now()

function onMessage(channel: string, message: string): void {
  if (channel !== REVOCATION_CHANNEL) return
  const event = decodeRevocation(message)
  if (event === null) return
  const seq = Number(event.sid.slice('bench-'.length))
  const r = received.get(seq) ?? { count: 0, last: 0 }
  r.count++
  r.last = now()
  received.set(seq, r)
  if (r.count === expected) {
    process.send!({ type: 'delivered', seq, at: r.last })
    received.delete(seq)
  }
}

async function run(input: WorkerInput): Promise<unknown> {
  if (input.op === 'close') {
    for (const s of subs.splice(0)) s.disconnect()
    return { closed: true }
  }
  const batch = 200
  for (let i = 0; i < input.count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, input.count - i) }, async (_, j) => {
        const [host, port] = input.nodes[(i + j) % input.nodes.length]!.split(':')
        const s = new Redis({ host, port: Number(port), connectionName: 'gatehouse-verifier-revocations', maxRetriesPerRequest: null })
        s.on('error', () => undefined)
        s.on(input.sharded ? 'smessage' : 'message', onMessage)
        subs.push(s)
        await (input.sharded ? s.ssubscribe(REVOCATION_CHANNEL) : s.subscribe(REVOCATION_CHANNEL))
      }),
    )
  }
  expected = subs.length
  return { subscribed: subs.length }
}

serveRuns(run)
