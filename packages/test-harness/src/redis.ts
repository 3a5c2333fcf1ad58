import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { connectResp, parseInfo, withClient, type RespClient } from './redis-client.js'
import { HOST, dataNodeArgs, freePorts, makeTempDir, pollUntil, removeDir, spawnRedisServer, type ServerProcess } from './redis-process.js'
import { freePort } from './ports.js'

/**
 * Private Redis servers for tests: a standalone `redis-server` or a Redis Cluster (3 masters and
 * 3 replicas by default), each on free ports of 127.0.0.1 in a temporary directory. Never the
 * shared Redis at 127.0.0.1:6379. The processes are managed by redis-process.ts; the test's own
 * connections (client()) are redis-client.ts's.
 */

/** Spawns a data node on `port` keeping its files in `dir` (created). */
async function launch(port: number, dir: string, extraArgs: string[], readyTimeoutMs: number, cleanupDir: string = dir): Promise<ServerProcess> {
  await mkdir(dir, { recursive: true })
  return await spawnRedisServer({ port, args: [...dataNodeArgs(port, dir), ...extraArgs], logfile: join(dir, 'redis.log'), readyTimeoutMs, cleanupDir })
}

// ---------------------------------------------------------------------------------------------
// Standalone

export interface StartRedisOptions {
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[]
  /** Default 10 s. */
  readyTimeoutMs?: number
}

export interface RedisServer {
  host: string
  port: number
  /** `redis://127.0.0.1:<port>` */
  url: string
  /** Stops the server (SIGTERM, then SIGKILL) and removes its directory; restart() may start it again. */
  stop(): Promise<void>
  /** Starts it again on the same port (stopping it first if it runs), with an empty data set. */
  restart(): Promise<void>
  /** A new connection to the server; close it when done. */
  client(): Promise<RespClient>
  /** Freezes the server (SIGSTOP): connections stay open but nothing answers, like a hung host. */
  pause(): void
  /** Thaws a paused server (SIGCONT). */
  resume(): void
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const args = opts.args ?? []
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000
  let lastError: unknown
  // A free port may be taken between freePort() and the bind: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    let dir = await makeTempDir('gatehouse-redis-')
    let proc: ServerProcess | null
    try {
      proc = await launch(port, dir, args, readyTimeoutMs)
    } catch (err) {
      lastError = err
      await removeDir(dir)
      continue
    }
    const stop = async (): Promise<void> => {
      const p = proc
      proc = null
      if (p !== null) await p.stop()
      await removeDir(dir)
    }
    return {
      host: HOST,
      port,
      url: `redis://${HOST}:${port}`,
      stop,
      async restart() {
        await stop()
        dir = await makeTempDir('gatehouse-redis-')
        proc = await launch(port, dir, args, readyTimeoutMs)
      },
      client: async () => await connectResp(port),
      pause() {
        proc?.child.kill('SIGSTOP')
      },
      resume() {
        proc?.child.kill('SIGCONT')
      },
    }
  }
  throw lastError instanceof Error ? lastError : new Error('could not start redis-server')
}

// ---------------------------------------------------------------------------------------------
// Cluster

export interface StartRedisClusterOptions {
  /** Default 3. */
  masters?: number
  /** Default 1. */
  replicasPerMaster?: number
  /** Extra redis-server arguments for every node. */
  args?: string[]
  /** Default 30 s. */
  readyTimeoutMs?: number
}

export interface RedisClusterHandle {
  /** Every node (masters and replicas) as created; pass to ioredis `new Cluster(nodes)`. */
  nodes: Array<{ host: string; port: number }>
  /** Stops every node and removes the directory. */
  stop(): Promise<void>
  /** A new connection to one node; close it when done. */
  client(port: number): Promise<RespClient>
  /** Ports of the nodes that are masters now (asked of the cluster). */
  masters(): Promise<number[]>
  /**
   * Kills a master (SIGKILL, a crash) and, unless `waitForFailover` is false, waits until its
   * replica has taken over and every surviving node reports `cluster_state:ok`.
   * Returns the port killed.
   */
  killMaster(port?: number, opts?: { waitForFailover?: boolean; timeoutMs?: number }): Promise<number>
}

export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3
  const replicas = opts.replicasPerMaster ?? 1
  const count = masters * (1 + replicas)
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000
  const root = await makeTempDir('gatehouse-redis-cluster-')
  const procs = new Map<number, ServerProcess>()
  const stop = async (): Promise<void> => {
    const all = [...procs.values()]
    procs.clear()
    await Promise.all(all.map((p) => p.stop()))
    await removeDir(root)
  }

  try {
    // The cluster bus port is chosen too (--cluster-port): port + 10000 may not exist or be free.
    const ports = await freePorts(count * 2)
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const port = ports[i] as number
        const bus = ports[count + i] as number
        const dir = join(root, String(port)) // own dir: replicas write dump.rdb during sync
        const proc = await launch(
          port,
          dir,
          ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout', '1000', '--cluster-port', String(bus),
            // replicas sync at once (the default waits 5 s for more replicas to share a transfer)
            '--repl-diskless-sync-delay', '0', ...(opts.args ?? [])],
          readyTimeoutMs,
          root,
        )
        procs.set(port, proc)
      }),
    )
    const nodePorts = ports.slice(0, count)
    await new Promise<void>((resolve, reject) => {
      execFile(
        'redis-cli',
        ['--cluster', 'create', ...nodePorts.map((p) => `${HOST}:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
        { timeout: readyTimeoutMs },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`redis-cli --cluster create failed: ${err.message}\n${stdout}\n${stderr}`))
          else resolve()
        },
      )
    })
    await waitClusterOk(nodePorts, count, readyTimeoutMs)
  } catch (err) {
    await stop()
    throw err
  }

  const nodes = [...procs.keys()].map((port) => ({ host: HOST, port }))
  const askNodes = async (): Promise<string> => {
    for (const port of procs.keys()) {
      try {
        return await withClient(port, async (c) => String(await c.call('CLUSTER', 'NODES')))
      } catch {
        // a dead node: ask the next
      }
    }
    throw new Error('no cluster node answers')
  }
  const mastersNow = async (): Promise<number[]> =>
    parseClusterNodes(await askNodes())
      .filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots > 0)
      .map((n) => n.port)

  return {
    nodes,
    stop,
    client: async (port) => await connectResp(port),
    masters: mastersNow,
    async killMaster(port, killOpts = {}) {
      const target = port ?? (await mastersNow())[0]
      const proc = target === undefined ? undefined : procs.get(target)
      if (target === undefined || proc === undefined) throw new Error(`no running master ${String(port)}`)
      procs.delete(target)
      await proc.stop('SIGKILL')
      if (killOpts.waitForFailover !== false) {
        const survivors = [...procs.keys()]
        await pollUntil(
          `failover of ${target}`,
          async () => {
            for (const p of survivors) {
              const ok = await withClient(p, async (c) => {
                const info = parseInfo(await c.call('CLUSTER', 'INFO'))
                if (info.cluster_state !== 'ok') return false
                const dead = parseClusterNodes(String(await c.call('CLUSTER', 'NODES'))).find((n) => n.port === target)
                return dead !== undefined && dead.flags.includes('fail') && dead.slots === 0
              })
              if (!ok) return false
            }
            return true
          },
          killOpts.timeoutMs ?? 20_000,
          100,
        )
      }
      return target
    },
  }
}

/**
 * Every node reports cluster_state:ok and knows all `count` nodes, and every replica has synced
 * with its master (a replica that never synced refuses to fail over).
 */
async function waitClusterOk(ports: number[], count: number, timeoutMs: number): Promise<void> {
  await pollUntil(
    'cluster_state:ok on every node',
    async () => {
      for (const port of ports) {
        const ready = await withClient(port, async (c) => {
          const info = parseInfo(await c.call('CLUSTER', 'INFO'))
          if (info.cluster_state !== 'ok' || Number(info.cluster_known_nodes) !== count) return false
          const repl = parseInfo(await c.call('INFO', 'replication'))
          return repl.role === 'master' || repl.master_link_status === 'up'
        })
        if (!ready) return false
      }
      return true
    },
    timeoutMs,
    50,
  )
}

interface ClusterNodeLine {
  port: number
  flags: string[]
  /** Number of slot ranges served. */
  slots: number
}

function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const fields = line.split(' ')
      // <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link-state> <slot>...
      const addr = fields[1] ?? ''
      const port = Number(addr.split('@')[0]?.split(':').pop())
      return { port, flags: (fields[2] ?? '').split(','), slots: Math.max(0, fields.length - 8) }
    })
}
