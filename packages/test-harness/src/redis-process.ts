import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Socket } from 'node:net'
import { forgetDirectory, killAtExit, removeAtExit } from './exit-hooks.js'
import { freePort } from './ports.js'
import { withClient } from './redis-client.js'

/**
 * redis-server processes for tests (standalone, Cluster and Sentinel nodes), never daemonized:
 * the child is ours, so stop() can kill it. A server never outlives the test process: stop()
 * kills it, an `exit` hook kills what is left, and a watchdog (`sh` blocked reading a pipe from
 * this process) kills it when this process dies without running hooks (SIGKILL, tap's timeout).
 */

export const HOST = '127.0.0.1'

/** A temporary directory removed by removeDir(), or at exit. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  removeAtExit(dir)
  return dir
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  forgetDirectory(dir)
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
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Picks `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

/** The arguments of a data node on `port` keeping its files in `dir`, without persistence. */
export function dataNodeArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, 'redis.log'), '--daemonize', 'no']
}

export interface ServerProcess {
  port: number
  child: ChildProcess
  exited: Promise<void>
  /** SIGTERM by default (SIGKILL after 3 s); resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

export interface SpawnRedisOptions {
  port: number
  /** Every argument of redis-server (dataNodeArgs(), or a sentinel's config file and --sentinel). */
  args: string[]
  /** Its log file: the tail is quoted when it does not start. */
  logfile: string
  readyTimeoutMs: number
  /** PING after AUTH with it. */
  password?: string
  /** Removed by the watchdog along with the process. */
  cleanupDir?: string
}

/** Spawns `redis-server <args>` and resolves once it answers PING. */
export async function spawnRedisServer(opts: SpawnRedisOptions): Promise<ServerProcess> {
  const { port } = opts
  const child = spawn('redis-server', opts.args, { stdio: 'ignore' })
  killAtExit(child)
  child.unref()
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject))
  spawnError.catch(() => undefined)

  // Kills the server if this process dies without running its exit hooks: `read` returns at EOF
  // of the pipe, which only this process holds open.
  const watchdog =
    child.pid === undefined
      ? null
      : spawn('sh', ['-c', 'read _ ; kill -9 "$1" 2>/dev/null; [ -n "$2" ] && rm -rf "$2"', 'redis-watchdog', String(child.pid), opts.cleanupDir ?? ''], {
          stdio: ['pipe', 'ignore', 'ignore'],
        })
  if (watchdog !== null) {
    killAtExit(watchdog)
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
  void exited.then(() => (died = true))
  try {
    await Promise.race([
      spawnError,
      pollUntil(
        `redis-server on port ${port}`,
        async () => {
          if (died) throw new Error('redis-server exited')
          return await withClient(port, async (c) => (await c.call('PING')) === 'PONG', { timeoutMs: 1000, ...(opts.password === undefined ? {} : { password: opts.password }) })
        },
        opts.readyTimeoutMs,
      ),
    ])
  } catch (err) {
    await stop('SIGKILL')
    const tail = (await readFile(opts.logfile, 'utf8').catch(() => '')).split('\n').slice(-5).join('\n')
    throw new Error(`redis-server on port ${port} did not start: ${(err as Error).message}\n${tail}`)
  }
  return { port, child, exited, stop }
}
