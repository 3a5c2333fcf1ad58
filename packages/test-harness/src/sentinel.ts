import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'
import { connectResp, parseInfo, pollUntil, type RespClient, type RespValue } from './redis.js'

/**
 * A private Redis Sentinel deployment for tests: one master, its replicas and (by default) three
 * sentinels, all `redis-server` processes (`--sentinel` mode needs no extra package) on free ports
 * of 127.0.0.1 in a temporary directory. Never the shared Redis at 127.0.0.1:6379.
 *
 * Like the standalone and cluster servers, nothing outlives the test process: stop() kills every
 * process, an `exit` hook kills what is left, and a watchdog (`sh` blocked reading a pipe that only
 * this process holds) kills each one if this process dies without running hooks.
 */

const HOST = '127.0.0.1'

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
  /** A new RESP connection to a node or a sentinel (authenticated to a data node when there is a password); close it when done. */
  client(port: number): Promise<RespClient>
  /** Stops every process and removes the directory. */
  stop(): Promise<void>
}

interface Proc {
  port: number
  child: ChildProcess
  exited: Promise<void>
  stop(signal?: NodeJS.Signals): Promise<void>
}

const live = new Set<ChildProcess>()
let exitHook = false

function track(child: ChildProcess): void {
  live.add(child)
  child.once('exit', () => live.delete(child))
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL')
    })
  }
}

async function withClient<T>(port: number, fn: (c: RespClient) => Promise<T>, password?: string): Promise<T> {
  const c = await connectResp(port, { timeoutMs: 2000 })
  try {
    if (password !== undefined) await c.call('AUTH', password)
    return await fn(c)
  } finally {
    await c.close()
  }
}

/** Spawns `redis-server <args>` (never daemonized: the child is ours) and waits until it answers PING. */
async function spawnRedis(port: number, args: string[], logfile: string, readyTimeoutMs: number, password?: string): Promise<Proc> {
  const child = spawn('redis-server', args, { stdio: 'ignore' })
  track(child)
  child.unref()
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject))
  spawnError.catch(() => undefined)
  const watchdog =
    child.pid === undefined
      ? null
      : spawn('sh', ['-c', 'read _ ; kill -9 "$1" 2>/dev/null', 'redis-watchdog', String(child.pid)], { stdio: ['pipe', 'ignore', 'ignore'] })
  if (watchdog !== null) {
    track(watchdog)
    watchdog.unref()
    ;(watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.()
    watchdog.on('error', () => undefined)
    watchdog.stdin?.on('error', () => undefined)
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    watchdog?.kill('SIGKILL')
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }
  }
  let died = false
  void exited.then(() => (died = true))
  try {
    await Promise.race([
      spawnError,
      pollUntil(
        `redis-server on port ${port}`,
        async () => {
          if (died) throw new Error('redis-server exited')
          return await withClient(port, async (c) => (await c.call('PING')) === 'PONG', password)
        },
        readyTimeoutMs,
        20,
      ),
    ])
  } catch (err) {
    await stop('SIGKILL')
    const tail = (await readFile(logfile, 'utf8').catch(() => '')).split('\n').slice(-5).join('\n')
    throw new Error(`redis-server on port ${port} did not start: ${(err as Error).message}\n${tail}`)
  }
  return { port, child, exited, stop }
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
  const root = await mkdtemp(join(tmpdir(), 'gatehouse-redis-sentinel-'))
  const nodes = new Map<number, Proc>()
  const sentinels = new Map<number, Proc>()
  const stop = async (): Promise<void> => {
    const all = [...nodes.values(), ...sentinels.values()]
    nodes.clear()
    sentinels.clear()
    await Promise.all(all.map((p) => p.stop()))
    await rm(root, { recursive: true, force: true })
  }

  const ports = new Set<number>()
  while (ports.size < 1 + replicaCount + sentinelCount) ports.add(await freePort())
  const [masterPort, ...rest] = [...ports] as [number, ...number[]]
  const replicaPorts = rest.slice(0, replicaCount)
  const sentinelPorts = rest.slice(replicaCount)

  const dataNode = async (port: number, extra: string[]): Promise<void> => {
    const dir = join(root, `node-${port}`)
    await mkdir(dir, { recursive: true })
    const logfile = join(dir, 'redis.log')
    nodes.set(
      port,
      await spawnRedis(
        port,
        ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logfile, '--daemonize', 'no', ...auth, ...extra],
        logfile,
        readyTimeoutMs,
        password,
      ),
    )
  }

  try {
    await dataNode(masterPort, [])
    await Promise.all(replicaPorts.map((p) => dataNode(p, ['--replicaof', HOST, String(masterPort)])))
    await pollUntil(
      'replicas in sync',
      async () => {
        for (const p of replicaPorts) {
          const info = parseInfo(await withClient(p, (c) => c.call('INFO', 'replication'), password))
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
        sentinels.set(port, await spawnRedis(port, [conf, '--sentinel'], logfile, readyTimeoutMs))
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
    client: async (port) => {
      const c = await connectResp(port)
      if (password !== undefined && !sentinels.has(port)) await c.call('AUTH', password)
      return c
    },
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
            const info = parseInfo(await withClient(now, (c) => c.call('INFO', 'replication'), password))
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
