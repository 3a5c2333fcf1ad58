import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connectResp, parseInfo, withClient, type RespClient, type RespValue } from './redis-client.js'
import { HOST, dataNodeArgs, freePorts, makeTempDir, pollUntil, removeDir, spawnRedisServer, type ServerProcess } from './redis-process.js'

/**
 * A private Redis Sentinel deployment for tests: one master, its replicas and (by default) three
 * sentinels, all `redis-server` processes (`--sentinel` mode needs no extra package) on free ports
 * of 127.0.0.1 in a temporary directory. Never the shared Redis at 127.0.0.1:6379.
 *
 * Like the standalone and cluster servers, nothing outlives the test process: stop() kills every
 * process, an `exit` hook kills what is left, and a watchdog (`sh` blocked reading a pipe that only
 * this process holds) kills each one if this process dies without running hooks.
 */

export interface StartRedisSentinelOptions {
  /** The master group name (REDIS_SENTINEL_NAME); default `gatehouse`. */
  name?: string
  /** Replicas of the master; default 1. */
  replicas?: number
  /** Sentinel processes; default 3 (quorum 2). */
  sentinels?: number
  /** How long a silent master takes to be declared down; default 1000 ms. */
  downAfterMs?: number
  /** Default 30 s. */
  readyTimeoutMs?: number
  /** `requirepass` of the data nodes (and `masterauth`, `sentinel auth-pass`); default none. */
  password?: string
}

export interface RedisSentinelHandle {
  /** The master group name, for ioredis `{ sentinels, name }`. */
  name: string
  /** The sentinels' addresses (REDIS_SENTINELS). */
  sentinels: Array<{ host: string; port: number }>
  /** `host:port,...` as REDIS_SENTINELS takes it. */
  sentinelsEnv: string
  /** The data nodes (master and replicas) as started. */
  nodes: Array<{ host: string; port: number }>
  /** The port of the current master, as the sentinels report it. */
  masterPort(): Promise<number>
  /**
   * Kills the current master (SIGKILL, a crash) and, unless `waitForFailover` is false, waits until
   * the sentinels name a new master and that node accepts writes. Returns the port killed.
   */
  killMaster(opts?: { waitForFailover?: boolean; timeoutMs?: number }): Promise<number>
  /** A new connection to a node or a sentinel (authenticated to a data node when there is a password); close it when done. */
  client(port: number): Promise<RespClient>
  /** Stops every process and removes the directory. */
  stop(): Promise<void>
}

/** SENTINEL MASTER's flat field/value list as a record. */
function fields(reply: RespValue): Record<string, string> {
  const out: Record<string, string> = {}
  if (!Array.isArray(reply)) return out
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1])
  return out
}

export async function startRedisSentinel(opts: StartRedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  const name = opts.name ?? 'gatehouse'
  const replicaCount = opts.replicas ?? 1
  const sentinelCount = opts.sentinels ?? 3
  const quorum = Math.floor(sentinelCount / 2) + 1
  const downAfterMs = opts.downAfterMs ?? 1000
  const password = opts.password
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password]
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000
  const nodeAuth = password === undefined ? {} : { password }
  const root = await makeTempDir('gatehouse-redis-sentinel-')
  const nodes = new Map<number, ServerProcess>()
  const sentinels = new Map<number, ServerProcess>()
  const stop = async (): Promise<void> => {
    const all = [...nodes.values(), ...sentinels.values()]
    nodes.clear()
    sentinels.clear()
    await Promise.all(all.map((p) => p.stop()))
    await removeDir(root)
  }

  const [masterPort, ...rest] = (await freePorts(1 + replicaCount + sentinelCount)) as [number, ...number[]]
  const replicaPorts = rest.slice(0, replicaCount)
  const sentinelPorts = rest.slice(replicaCount)

  const dataNode = async (port: number, extra: string[]): Promise<void> => {
    const dir = join(root, `node-${port}`)
    await mkdir(dir, { recursive: true })
    nodes.set(
      port,
      await spawnRedisServer({
        port,
        args: [...dataNodeArgs(port, dir), ...auth, ...extra],
        logfile: join(dir, 'redis.log'),
        readyTimeoutMs,
        ...(password === undefined ? {} : { password }),
      }),
    )
  }

  try {
    await dataNode(masterPort, [])
    await Promise.all(replicaPorts.map((p) => dataNode(p, ['--replicaof', HOST, String(masterPort)])))
    await pollUntil(
      'replicas in sync',
      async () => {
        for (const p of replicaPorts) {
          const info = parseInfo(await withClient(p, (c) => c.call('INFO', 'replication'), nodeAuth))
          if (info.master_link_status !== 'up') return false
        }
        return true
      },
      readyTimeoutMs,
    )
    // Each sentinel rewrites its own config file (it records what it learns), so each has one.
    await Promise.all(
      sentinelPorts.map(async (port) => {
        const dir = join(root, `sentinel-${port}`)
        await mkdir(dir, { recursive: true })
        const conf = join(dir, 'sentinel.conf')
        const logfile = join(dir, 'sentinel.log')
        await writeFile(
          conf,
          [
            `port ${port}`,
            `bind ${HOST}`,
            `dir ${dir}`,
            `logfile ${logfile}`,
            'daemonize no',
            `sentinel monitor ${name} ${HOST} ${masterPort} ${quorum}`,
            `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
            `sentinel failover-timeout ${name} ${Math.max(downAfterMs * 5, 3000)}`,
            `sentinel parallel-syncs ${name} 1`,
            ...(password === undefined ? [] : [`sentinel auth-pass ${name} ${password}`]),
            '',
          ].join('\n'),
        )
        sentinels.set(port, await spawnRedisServer({ port, args: [conf, '--sentinel'], logfile, readyTimeoutMs }))
      }),
    )
    // Ready when every sentinel knows the others and the replicas (hello messages, ~2 s apart).
    await pollUntil(
      'sentinels to discover each other and the replicas',
      async () => {
        for (const port of sentinelPorts) {
          const m = fields(await withClient(port, (c) => c.call('SENTINEL', 'MASTER', name)))
          if (Number(m['num-other-sentinels']) !== sentinelCount - 1 || Number(m['num-slaves']) !== replicaCount) return false
        }
        return true
      },
      readyTimeoutMs,
      100,
    )
  } catch (err) {
    await stop()
    throw err
  }

  const askMaster = async (): Promise<number> => {
    let lastError: unknown
    for (const port of sentinels.keys()) {
      try {
        const addr = await withClient(port, (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name))
        if (Array.isArray(addr) && addr.length === 2) return Number(addr[1])
      } catch (err) {
        lastError = err
      }
    }
    throw new Error(`no sentinel names a master for ${name}${lastError instanceof Error ? `: ${lastError.message}` : ''}`)
  }

  const sentinelList = sentinelPorts.map((port) => ({ host: HOST, port }))
  return {
    name,
    sentinels: sentinelList,
    sentinelsEnv: sentinelList.map((s) => `${s.host}:${s.port}`).join(','),
    nodes: [masterPort, ...replicaPorts].map((port) => ({ host: HOST, port })),
    masterPort: askMaster,
    client: async (port) => await connectResp(port, sentinels.has(port) ? {} : nodeAuth),
    async killMaster(killOpts = {}) {
      const target = await askMaster()
      const proc = nodes.get(target)
      if (proc === undefined) throw new Error(`the master ${target} is not running`)
      nodes.delete(target)
      await proc.stop('SIGKILL')
      if (killOpts.waitForFailover !== false) {
        await pollUntil(
          `failover away from ${target}`,
          async () => {
            const now = await askMaster()
            if (now === target || !nodes.has(now)) return false
            const info = parseInfo(await withClient(now, (c) => c.call('INFO', 'replication'), nodeAuth))
            return info.role === 'master'
          },
          killOpts.timeoutMs ?? 30_000,
          100,
        )
      }
      return target
    },
    stop,
  }
}
