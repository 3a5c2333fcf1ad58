import { performance } from 'node:perf_hooks'
import { RECENT_REVOCATIONS_KEY, REVOCATION_CHANNEL, encodeRevocation } from '../../packages/service-kit/src/revocation.js'
import { parseInfo, startRedis, startRedisCluster, type RespClient } from '../../packages/test-harness/src/index.js'
import { spawnChild, type Child } from '../lib/children.js'
import type { BenchSettings, Scenario } from '../lib/context.js'
import type { Check, ScenarioResult } from '../lib/measure.js'
import { Scope } from '../lib/stack.js'
import type { WorkerInput } from '../lib/subscriber-worker.js'

const WORKERS = 2
const NO_PERSISTENCE = ['--save', '', '--appendonly', 'no']

const now = (): number => performance.timeOrigin + performance.now()

async function cpuMs(c: RespClient): Promise<number> {
  const info = parseInfo(await c.call('INFO', 'cpu'))
  return (Number(info.used_cpu_sys) + Number(info.used_cpu_user)) * 1000
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}

interface FanoutFigures {
  subscribers: number
  publishes: number
  /** ms from PUBLISH sent until the last subscriber had it. */
  p50: number
  p99: number
  max: number
  /** CPU µs per publish, above idle, on each node. */
  cpuUsPerPublish: number[]
  /** INFO memory mem_clients_normal on each node after the publishes, bytes. */
  clientMemory: number[]
  /** INFO clients client_recent_max_output_buffer on each node after the publishes (the largest of the last seconds). */
  maxOutputBuffer: number[]
}

interface Workers {
  children: Child[]
  subscribe(nodes: string[], count: number, sharded: boolean): Promise<void>
  close(): Promise<void>
  /** Resolves with the time every worker reported `seq` delivered. */
  delivered(seq: number, timeoutMs: number): Promise<number>
}

async function startWorkers(scope: Scope): Promise<Workers> {
  const children = await Promise.all(
    Array.from({ length: WORKERS }, async (_, i) => {
      const child = spawnChild(`subscribers ${i + 1}`, { script: 'bench/lib/subscriber-worker.ts', cpu: undefined })
      scope.add(() => child.stop())
      await child.waitFor((m) => m.type === 'ready', 30_000)
      return child
    }),
  )
  const seen = new Map<number, number[]>()
  const waiters = new Map<number, (at: number) => void>()
  for (const c of children) {
    c.proc.on('message', (m: { type?: string; seq?: number; at?: number }) => {
      if (m.type !== 'delivered' || m.seq === undefined || m.at === undefined) return
      const list = seen.get(m.seq) ?? []
      list.push(m.at)
      seen.set(m.seq, list)
      if (list.length === children.length) {
        seen.delete(m.seq)
        waiters.get(m.seq)?.(Math.max(...list))
      }
    })
  }
  const call = async (c: Child, input: WorkerInput): Promise<void> => {
    await c.request({ type: 'run', input }, 120_000)
  }
  return {
    children,
    async subscribe(nodes, count, sharded) {
      await Promise.all(children.map((c, i) => call(c, { op: 'subscribe', nodes, count: Math.floor(count / WORKERS) + (i < count % WORKERS ? 1 : 0), sharded })))
    },
    async close() {
      await Promise.all(children.map((c) => call(c, { op: 'close' })))
    },
    delivered: (seq, timeoutMs) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(seq)
          reject(new Error(`publish ${seq} not delivered to every subscriber within ${timeoutMs} ms`))
        }, timeoutMs)
        waiters.set(seq, (at) => {
          clearTimeout(timer)
          waiters.delete(seq)
          resolve(at)
        })
      }),
  }
}

/**
 * `publishes` revocations, one at a time (the next once every subscriber has the previous one),
 * through `publisher`; CPU and client memory measured on every node in `nodes`.
 */
async function measureFanout(workers: Workers, publisher: RespClient, nodes: RespClient[], subscribers: number, publishes: number, sharded: boolean): Promise<FanoutFigures> {
  // Idle CPU first (cron, cluster bus), subtracted below.
  const idle0 = await Promise.all(nodes.map(cpuMs))
  const idleStart = Date.now()
  await new Promise((r) => setTimeout(r, 1000))
  const idle1 = await Promise.all(nodes.map(cpuMs))
  const idlePerMs = idle1.map((x, i) => (x - idle0[i]!) / (Date.now() - idleStart))
  const latencies: number[] = []
  const clientMemory = nodes.map(() => 0)
  const maxOutputBuffer = nodes.map(() => 0)
  const cpu0 = await Promise.all(nodes.map(cpuMs))
  const started = Date.now()
  const exp = Math.floor(Date.now() / 1000) + 300
  for (let seq = 0; seq < publishes; seq++) {
    const delivered = workers.delivered(seq, 30_000)
    const sent = now()
    await publisher.call(sharded ? 'SPUBLISH' : 'PUBLISH', REVOCATION_CHANNEL, encodeRevocation({ sid: `bench-${seq}`, exp }))
    latencies.push((await delivered) - sent)
  }
  const elapsed = Date.now() - started
  const cpu1 = await Promise.all(nodes.map(cpuMs))
  // After the CPU reading: INFO walks every client, which is not what a publish costs.
  for (const [i, n] of nodes.entries()) {
    const mem = parseInfo(await n.call('INFO', 'memory'))
    const clients = parseInfo(await n.call('INFO', 'clients'))
    clientMemory[i] = Number(mem.mem_clients_normal ?? 0)
    maxOutputBuffer[i] = Number(clients.client_recent_max_output_buffer ?? 0)
  }
  return {
    subscribers,
    publishes,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: Math.max(...latencies),
    cpuUsPerPublish: cpu1.map((x, i) => Math.max(0, ((x - cpu0[i]! - idlePerMs[i]! * elapsed) * 1000) / publishes)),
    clientMemory,
    maxOutputBuffer,
  }
}

/** Waits until `count` subscribers are registered on the nodes (PUBSUB NUMSUB / SHARDNUMSUB, summed). */
async function waitSubscribed(nodes: RespClient[], count: number, sharded: boolean): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    let sum = 0
    for (const n of nodes) {
      const r = (await n.call('PUBSUB', sharded ? 'SHARDNUMSUB' : 'NUMSUB', REVOCATION_CHANNEL)) as [string, number]
      sum += Number(r[1])
    }
    if (sum >= count) return
    if (Date.now() > deadline) throw new Error(`only ${sum} of ${count} subscribers registered`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Revocation fan-out (issue 21): many subscribers of the revocation feed (subscriber-worker.ts,
 * ioredis connections in two processes) on a private redis-server, 100, 1,000 and 5,000 of them;
 * per publish: the time until every subscriber had it (p50/p99), Redis CPU per publish and the
 * clients' memory. Then on a 3-master Cluster (1,000 subscribers spread over the masters, as
 * resource replicas pointed at different nodes): classic PUBLISH, which every node forwards to
 * every other over the cluster bus, against sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7), where
 * only the channel's shard is involved. Last, what a pull would cost instead: ZRANGEBYSCORE of the
 * recent set (INFO commandstats µs per call) with 100 and 1,000 entries. Opt-in.
 */
export const fanoutScenario: Scenario = {
  name: 'fanout',
  title: 'revocation fan-out: PUBLISH to 100 / 1,000 / 5,000 subscribers; Cluster PUBLISH vs SPUBLISH; pull cost',
  optIn: true,
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { log } = settings
    const levels = settings.quick ? [10, 100] : [100, 1000, 5000]
    const clusterSubscribers = settings.quick ? 30 : 1000
    const publishes = settings.quick ? 20 : 200
    const scope = new Scope()
    const facts: Record<string, number | string> = {}
    const checks: Check[] = []
    const row = (f: FanoutFigures): string =>
      `p50 ${f.p50.toFixed(2)} ms, p99 ${f.p99.toFixed(2)} ms, max ${f.max.toFixed(2)} ms; CPU µs/publish by node ${f.cpuUsPerPublish.map((x) => x.toFixed(0)).join(' ')}; client memory by node ${f.clientMemory.map((x) => `${(x / 1024).toFixed(0)} KiB`).join(' ')}; max output buffer ${f.maxOutputBuffer.join(' ')} B`
    try {
      const workers = await startWorkers(scope)
      // 1. Standalone.
      {
        const redis = await startRedis({ args: [...NO_PERSISTENCE, '--maxclients', '12000'] })
        scope.add(() => redis.stop())
        const admin = await redis.client()
        const publisher = await redis.client()
        scope.add(() => admin.close())
        scope.add(() => publisher.close())
        for (const n of levels) {
          log(`fanout: ${n} subscribers on one redis-server`)
          await workers.subscribe([`127.0.0.1:${redis.port}`], n, false)
          await waitSubscribed([admin], n, false)
          const f = await measureFanout(workers, publisher, [admin], n, publishes, false)
          await workers.close()
          log(`  ${row(f)}`)
          facts[`standalone_${n}`] = row(f)
          facts[`standalone_${n}_p99_ms`] = Number(f.p99.toFixed(2))
          facts[`standalone_${n}_cpu_us_per_publish`] = Math.round(f.cpuUsPerPublish[0]!)
          facts[`standalone_${n}_client_bytes_per_subscriber`] = Math.round(f.clientMemory[0]! / n)
          checks.push({ name: `fanout: ${n} subscribers each got all ${publishes} publishes`, ok: f.publishes === publishes, detail: `${publishes} publishes, every one delivered to all ${n}` })
        }
        // 3. What a pull costs: ZRANGEBYSCORE of the recent set as the feed reads it.
        const nowS = Math.floor(Date.now() / 1000)
        for (const size of [100, 1000]) {
          await admin.call('DEL', RECENT_REVOCATIONS_KEY)
          for (let i = 0; i < size; i += 500) {
            const args: (string | number)[] = []
            for (let j = i; j < Math.min(size, i + 500); j++) args.push(nowS + 300, `family-${String(j).padStart(22, '0')}`)
            await admin.call('ZADD', RECENT_REVOCATIONS_KEY, ...args)
          }
          // Read as the feed reads it (the whole live set) and as an incremental poll would (only
          // entries scored above the last one seen: none new here). INFO cpu counts the socket
          // I/O too, as it does for a publish; commandstats counts the command alone.
          const calls = settings.quick ? 100 : 2000
          for (const [how, from] of [['full', String(nowS)], ['incremental', `(${nowS + 300}`]] as const) {
            await admin.call('CONFIG', 'RESETSTAT')
            const cpu0 = await cpuMs(admin)
            for (let i = 0; i < calls; i++) await publisher.call('ZRANGEBYSCORE', RECENT_REVOCATIONS_KEY, from, '+inf', 'WITHSCORES')
            const cpuUs = ((await cpuMs(admin)) - cpu0) * 1000 / calls
            const stats = parseInfo(await admin.call('INFO', 'commandstats'))
            const usec = Number(/usec_per_call=([\d.]+)/.exec(stats.cmdstat_zrangebyscore ?? '')?.[1] ?? 0)
            facts[`pull_${how}_${size}_entries_cpu_us_per_call`] = Number(cpuUs.toFixed(1))
            facts[`pull_${how}_${size}_entries_command_us_per_call`] = usec
            log(`  pull, ${how} read of a set of ${size}: ${cpuUs.toFixed(1)} µs Redis CPU per call (INFO cpu), ${usec} µs in the command (commandstats)`)
          }
        }
      }
      // 2. Cluster: classic PUBLISH (broadcast over the bus) against sharded pub/sub.
      {
        const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0, args: [...NO_PERSISTENCE, '--maxclients', '12000'] })
        scope.add(() => cluster.stop())
        const masters = await cluster.masters()
        const admins = await Promise.all(
          masters.map(async (p) => {
            const c = await cluster.client(p)
            scope.add(() => c.close())
            return c
          }),
        )
        const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', REVOCATION_CHANNEL))
        // The master serving the channel's slot: sharded subscribers and SPUBLISH go there.
        const slots = (await admins[0]!.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
        const ownerPort = Number(slots.find(([from, to]) => slot >= from && slot <= to)?.[2][1])
        const owner = masters.indexOf(ownerPort)
        if (owner < 0) throw new Error(`no master serves slot ${slot}`)
        const publisherClassic = await cluster.client(masters[(owner + 1) % masters.length]!)
        const publisherSharded = await cluster.client(masters[owner]!)
        scope.add(() => publisherClassic.close())
        scope.add(() => publisherSharded.close())
        facts.cluster_channel_slot_owner = `master ${owner + 1} of 3`
        log(`fanout: ${clusterSubscribers} subscribers over 3 masters, classic PUBLISH`)
        await workers.subscribe(masters.map((p) => `127.0.0.1:${p}`), clusterSubscribers, false)
        await waitSubscribed(admins, clusterSubscribers, false)
        const classic = await measureFanout(workers, publisherClassic, admins, clusterSubscribers, publishes, false)
        await workers.close()
        log(`  ${row(classic)}`)
        facts[`cluster_classic_${clusterSubscribers}`] = row(classic)
        facts[`cluster_classic_cpu_us_per_publish_total`] = Math.round(classic.cpuUsPerPublish.reduce((a, b) => a + b, 0))
        log(`fanout: ${clusterSubscribers} subscribers, sharded (SSUBSCRIBE on the channel's shard, SPUBLISH)`)
        await workers.subscribe([`127.0.0.1:${masters[owner]!}`], clusterSubscribers, true)
        await waitSubscribed(admins, clusterSubscribers, true)
        const sharded = await measureFanout(workers, publisherSharded, admins, clusterSubscribers, publishes, true)
        await workers.close()
        log(`  ${row(sharded)}`)
        facts[`cluster_sharded_${clusterSubscribers}`] = row(sharded)
        facts[`cluster_sharded_cpu_us_per_publish_total`] = Math.round(sharded.cpuUsPerPublish.reduce((a, b) => a + b, 0))
        checks.push({ name: 'fanout: Cluster, classic and sharded, every subscriber got every publish', ok: classic.publishes === publishes && sharded.publishes === publishes, detail: `${publishes} publishes each` })
      }
      facts.latency_p50_levels = levels.map((n) => `${n}: ${String(facts[`standalone_${n}`]).split(',')[0]}`).join('; ')
      return { name: 'fanout', measurements: [], ratios: [], checks, facts }
    } finally {
      await scope.close()
    }
  },
}
