import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'

/**
 * Private Redis servers for tests: a standalone `redis-server` or a 6-node Redis Cluster, each on
 * free ports of 127.0.0.1 in a temporary directory, never daemonized (the child is ours, so stop()
 * can kill it). Never the shared Redis at 127.0.0.1:6379.
 *
 * A server never outlives the test process: stop() kills it, an `exit` hook kills what is left,
 * and a watchdog (`sh` blocked reading a pipe from this process) kills it when this process dies
 * without running hooks (SIGKILL, tap's timeout).
 *
 * This package has no Redis client dependency, so client() is a minimal RESP2 client, enough for
 * assertions (INFO, PTTL, MEMORY USAGE, CLUSTER ...).
 */

const HOST = '127.0.0.1'

// ---------------------------------------------------------------------------------------------
// A minimal RESP2 client

export type RespValue = string | number | null | RespValue[] | RespError

/** An error reply (`-ERR ...`). */
export class RespError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RespError'
  }
}

export interface RespClient {
  /** Sends one command; resolves with its reply, rejects on an error reply, a timeout or a closed connection. */
  call(...args: Array<string | number>): Promise<RespValue>
  close(): Promise<void>
}

interface Pending {
  resolve: (v: RespValue) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

/** Connects a RESP client to host:port (rejects after `timeoutMs`). */
export async function connectResp(port: number, opts: { host?: string; timeoutMs?: number } = {}): Promise<RespClient> {
  const host = opts.host ?? HOST
  const timeoutMs = opts.timeoutMs ?? 5000
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host, port })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`connect ${host}:${port} timed out`))
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      s.removeAllListeners('error')
      resolve(s)
    })
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
  socket.setNoDelay(true)
  socket.unref() // referenced only while a reply is awaited
  const pending: Pending[] = []
  let buffer: Buffer = Buffer.alloc(0)
  let closed: Error | null = null

  const failAll = (err: Error): void => {
    closed ??= err
    for (const p of pending.splice(0)) {
      clearTimeout(p.timer)
      p.reject(err)
    }
  }
  socket.on('data', (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    for (;;) {
      const parsed = parseReply(buffer, 0)
      if (parsed === null) break
      buffer = buffer.subarray(parsed[1])
      const p = pending.shift()
      if (p === undefined) continue
      clearTimeout(p.timer)
      if (pending.length === 0) socket.unref()
      const value = parsed[0]
      if (value instanceof RespError) p.reject(value)
      else p.resolve(value)
    }
  })
  socket.on('error', (err) => failAll(err))
  socket.on('close', () => failAll(new Error(`connection to ${host}:${port} closed`)))

  return {
    call(...args) {
      if (closed !== null) return Promise.reject(closed)
      return new Promise<RespValue>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = pending.findIndex((p) => p.timer === timer)
          // A reply that never came leaves the stream unsynchronised: drop the connection.
          if (i >= 0) {
            socket.destroy()
            failAll(new Error(`${String(args[0])} timed out after ${timeoutMs} ms`))
          }
        }, timeoutMs)
        pending.push({ resolve, reject, timer })
        socket.ref()
        socket.write(encodeCommand(args))
      })
    },
    async close() {
      if (closed !== null) return
      failAll(new Error(`connection to ${host}:${port} closed by the client`))
      socket.destroy()
    },
  }
}

function encodeCommand(args: Array<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const b = Buffer.from(String(arg))
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** One reply from buf at pos: [value, next position], or null when incomplete. */
function parseReply(buf: Buffer, pos: number): [RespValue, number] | null {
  if (pos >= buf.length) return null
  const eol = buf.indexOf('\r\n', pos)
  if (eol < 0) return null
  const line = buf.toString('utf8', pos + 1, eol)
  const next = eol + 2
  switch (String.fromCharCode(buf[pos] as number)) {
    case '+':
      return [line, next]
    case '-':
      return [new RespError(line), next]
    case ':':
      return [Number(line), next]
    case '$': {
      const len = Number(line)
      if (len < 0) return [null, next]
      if (buf.length < next + len + 2) return null
      return [buf.toString('utf8', next, next + len), next + len + 2]
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return [null, next]
      const items: RespValue[] = []
      let p = next
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, p)
        if (item === null) return null
        items.push(item[0])
        p = item[1]
      }
      return [items, p]
    }
    default:
      throw new Error(`unexpected RESP type byte ${buf[pos]}`)
  }
}

export interface MonitoredCommand {
  /** `lua` for a command run by a script, else the client's `ip:port`. */
  source: string
  /** Command name (lower case) and arguments. */
  args: string[]
}

export interface RedisMonitor {
  /** Every command seen so far, in execution order (the server's MONITOR feed). */
  readonly commands: MonitoredCommand[]
  /** Resolves once a command matching `predicate` has been seen (rejects after `timeoutMs`). */
  waitFor(predicate: (c: MonitoredCommand) => boolean, timeoutMs?: number): Promise<MonitoredCommand>
  close(): Promise<void>
}

/**
 * Opens a MONITOR connection to a server. To know that everything before a point has been seen,
 * send a marker (e.g. `ECHO <unique>`) on another connection and waitFor it: the feed is in order.
 */
export async function monitorRedis(port: number, opts: { host?: string } = {}): Promise<RedisMonitor> {
  const host = opts.host ?? HOST
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
  const commands: MonitoredCommand[] = []
  const waiters = new Set<() => void>()
  let pending = ''
  let started = false
  socket.setEncoding('utf8')
  socket.on('error', () => undefined)
  const ready = new Promise<void>((resolve) => {
    socket.on('data', (chunk: string) => {
      pending += chunk
      let eol: number
      while ((eol = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, eol)
        pending = pending.slice(eol + 2)
        if (!started) {
          started = true // the +OK answering MONITOR itself
          resolve()
          continue
        }
        // +1700000000.123456 [0 127.0.0.1:54321] "evalsha" "..." ...
        const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/.exec(line)
        if (m === null) continue
        const args = [...(m[2] ?? '').matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((a) => a[1] ?? '')
        if (args[0] !== undefined) args[0] = args[0].toLowerCase()
        commands.push({ source: m[1] ?? '', args })
      }
      for (const w of waiters) w()
    })
  })
  socket.write(encodeCommand(['MONITOR']))
  await ready
  return {
    commands,
    async waitFor(predicate, timeoutMs = 5000) {
      return await new Promise<MonitoredCommand>((resolve, reject) => {
        const check = (): void => {
          const found = commands.find(predicate)
          if (found === undefined) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`MONITOR: no matching command within ${timeoutMs} ms`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
    async close() {
      socket.destroy()
    },
  }
}

/** Parses an INFO reply into field → value. */
export function parseInfo(reply: RespValue): Record<string, string> {
  const out: Record<string, string> = {}
  if (typeof reply !== 'string') return out
  for (const line of reply.split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set<ChildProcess>()
const liveDirs = new Set<string>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL')
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  })
}

function track(child: ChildProcess): void {
  installExitHook()
  live.add(child)
  child.once('exit', () => live.delete(child))
}

async function makeTempDir(prefix: string): Promise<string> {
  installExitHook()
  const dir = await mkdtemp(join(tmpdir(), prefix))
  liveDirs.add(dir)
  return dir
}

async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  liveDirs.delete(dir)
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `probe` every `intervalMs` until it returns true, at most `timeoutMs`; then throws `what`. */
export async function pollUntil(what: string, probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await probe()) return
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`)
    }
    await sleep(intervalMs)
  }
}

interface ServerProcess {
  port: number
  child: ChildProcess
  exited: Promise<void>
  stop(signal?: NodeJS.Signals): Promise<void>
}

/** Spawns redis-server on `port` in `dir` and resolves once it answers PING. */
async function launch(
  port: number,
  dir: string,
  extraArgs: string[],
  readyTimeoutMs: number,
  cleanupDir: string = dir,
): Promise<ServerProcess> {
  await mkdir(dir, { recursive: true })
  const logfile = join(dir, 'redis.log')
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logfile,
      '--daemonize', 'no', ...extraArgs],
    { stdio: 'ignore' },
  )
  track(child)
  child.unref()
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject))
  spawnError.catch(() => undefined)

  // Kills the server if this process dies without running its exit hooks: `read` returns at EOF
  // of the pipe, which only this process holds open.
  const pid = child.pid
  const watchdog =
    pid === undefined
      ? null
      : spawn('sh', ['-c', 'read _ ; kill -9 "$1" 2>/dev/null; rm -rf "$2"', 'redis-watchdog', String(pid), cleanupDir], {
          stdio: ['pipe', 'ignore', 'ignore'],
        })
  if (watchdog !== null) {
    track(watchdog)
    watchdog.unref()
    ;(watchdog.stdin as unknown as Socket | null)?.unref?.()
    watchdog.on('error', () => undefined)
    watchdog.stdin?.on('error', () => undefined)
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    watchdog?.kill('SIGKILL')
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal)
      child.kill('SIGCONT') // a paused server acts on SIGTERM only once thawed
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }
  }

  let died = false
  void exited.then(() => {
    died = true
  })
  try {
    await Promise.race([
      spawnError,
      pollUntil(
        `redis-server on port ${port}`,
        async () => {
          if (died) throw new Error('redis-server exited')
          const c = await connectResp(port, { timeoutMs: 1000 })
          try {
            return (await c.call('PING')) === 'PONG'
          } finally {
            await c.close()
          }
        },
        readyTimeoutMs,
      ),
    ])
  } catch (err) {
    await stop('SIGKILL')
    const log = await readFile(logfile, 'utf8').catch(() => '')
    const tail = log.split('\n').slice(-5).join('\n')
    throw new Error(`redis-server on port ${port} did not start: ${(err as Error).message}\n${tail}`)
  }
  return { port, child, exited, stop }
}

/** Picks `count` distinct free ports. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
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
  /** A new RESP connection to the server; close it when done. */
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
  /** A new RESP connection to one node; close it when done. */
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

async function withClient<T>(port: number, fn: (c: RespClient) => Promise<T>): Promise<T> {
  const c = await connectResp(port, { timeoutMs: 2000 })
  try {
    return await fn(c)
  } finally {
    await c.close()
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
