import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/**
 * The benchmark's child processes: servers, load generators and CPU loops, each a separate Node
 * process so that the load generator never shares an event loop with what it measures. Every
 * child runs TypeScript through tsx with the `gatehouse-source` condition (the workspace's
 * sources, no build step) and loads guard.ts, which ends it when this process goes away.
 *
 * Where `taskset` works, servers and CPU loops are pinned to one CPU and load generators to
 * another (the reference figures' "one core for the server, autocannon on the other"); all the
 * threads of a pinned process (libuv's pool, where WebCrypto signing and argon2 run) share its
 * CPU, so "one core" means one core.
 */

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const GUARD = fileURLToPath(new URL('./guard.ts', import.meta.url))

const live = new Set<ChildProcess>()
let hooksInstalled = false

function installHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL')
  })
  // Ctrl-C or a kill: stop every child first (their own hooks remove temporary files), then go.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const c of live) c.kill('SIGTERM')
      process.exitCode = 130
      setTimeout(() => process.exit(130), 2000).unref()
      void stopAll().then(() => process.exit(130))
    })
  }
}

let tasksetWorks: boolean | undefined
/** Whether this machine lets us pin processes (a container may forbid sched_setaffinity). */
export function canPin(): boolean {
  if (tasksetWorks === undefined) {
    const r = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    tasksetWorks = r.status === 0
  }
  return tasksetWorks
}

export interface ChildOptions {
  /** A .ts or .js file, relative to the repository root or absolute. */
  script: string
  args?: string[]
  env?: Record<string, string>
  /** Pin to this CPU (ignored where pinning is not possible). */
  cpu?: number | undefined
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: string[]
  /** What the process prints to stdout: kept (last lines, for errors) or thrown away. */
  stdout?: 'tail' | 'ignore'
}

export interface Child {
  readonly name: string
  readonly pid: number
  readonly proc: ChildProcess
  /** The last lines the process wrote (stdout when kept, and stderr). */
  tail(): string
  /** Sends a message and resolves with the first reply carrying the same `id`. */
  request<T>(message: Record<string, unknown>, timeoutMs?: number): Promise<T>
  /** Resolves with the first message matching `predicate`. */
  waitFor<T>(predicate: (m: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<T>
  /** SIGTERM (SIGKILL after the bound); resolves when it has exited. */
  stop(timeoutMs?: number): Promise<void>
  readonly exited: Promise<number | null>
}

const TAIL_LINES = 80
let nextId = 1

export function spawnChild(name: string, opts: ChildOptions): Child {
  installHooks()
  const nodeArgs = ['--import', 'tsx', '--conditions=gatehouse-source', '--import', GUARD, ...(opts.nodeFlags ?? []), opts.script, ...(opts.args ?? [])]
  const pin = opts.cpu !== undefined && canPin()
  const command = pin ? 'taskset' : process.execPath
  const args = pin ? ['-c', String(opts.cpu), process.execPath, ...nodeArgs] : nodeArgs
  const proc = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...opts.env },
    stdio: ['ignore', opts.stdout === 'tail' ? 'pipe' : 'ignore', 'pipe', 'ipc'],
  })
  live.add(proc)
  const lines: string[] = []
  const keep = (buf: Buffer): void => {
    for (const l of buf.toString('utf8').split('\n')) {
      if (l === '') continue
      lines.push(l.length > 2000 ? l.slice(0, 2000) + '…' : l)
      if (lines.length > TAIL_LINES) lines.shift()
    }
  }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => {
      live.delete(proc)
      resolve(code ?? (signal === null ? null : 128))
    }),
  )
  const listeners = new Set<(m: Record<string, unknown>) => void>()
  proc.on('message', (m) => {
    if (typeof m !== 'object' || m === null) return
    for (const l of [...listeners]) l(m as Record<string, unknown>)
  })
  let exitCode: number | null | undefined
  void exited.then((c) => (exitCode = c))

  const waitFor = <T>(predicate: (m: Record<string, unknown>) => boolean, timeoutMs = 120_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const done = (err: Error | null, value?: T): void => {
        clearTimeout(timer)
        listeners.delete(listener)
        if (err) reject(err)
        else resolve(value as T)
      }
      const listener = (m: Record<string, unknown>): void => {
        if (predicate(m)) done(null, m as T)
      }
      const timer = setTimeout(() => done(new Error(`${name}: no answer within ${timeoutMs} ms\n${lines.join('\n')}`)), timeoutMs)
      listeners.add(listener)
      void exited.then((code) => done(new Error(`${name} exited (${String(code)}) while we waited for it:\n${lines.join('\n')}`)))
    })

  return {
    name,
    get pid() {
      return proc.pid ?? -1
    },
    proc,
    tail: () => lines.join('\n'),
    exited,
    waitFor,
    request<T>(message: Record<string, unknown>, timeoutMs?: number): Promise<T> {
      const id = nextId++
      const reply = waitFor<Record<string, unknown>>((m) => m.id === id, timeoutMs).then((m) => {
        // A child answers a request with its result, or with {type: 'error', message}.
        if (m.type === 'error') throw new Error(`${name}: ${String(m.message)}`)
        return m as T
      })
      proc.send({ ...message, id })
      return reply
    },
    async stop(timeoutMs = 10_000) {
      if (exitCode !== undefined) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
      await exited
      clearTimeout(timer)
    },
  }
}

/**
 * The worker's side of `request` (cpu-worker.ts, load-worker.ts): each `{type: 'run', input}` is
 * answered with its result or `{type: 'error', message}` under the same id; then the worker tells
 * the parent it is ready.
 */
export function serveRuns<T>(run: (input: T) => Promise<unknown>): void {
  process.on('message', (m: { id: number; type: string; input: T }) => {
    if (m.type !== 'run') return
    run(m.input).then(
      (result) => process.send!({ id: m.id, type: 'result', result }),
      (err: unknown) => process.send!({ id: m.id, type: 'error', message: (err as Error).stack ?? String(err) }),
    )
  })
  process.send!({ type: 'ready' })
}

/** Stops every child still running (SIGTERM, then SIGKILL). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...live].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve()
          const timer = setTimeout(() => c.kill('SIGKILL'), 5000)
          c.once('exit', () => {
            clearTimeout(timer)
            resolve()
          })
          c.kill('SIGTERM')
        }),
    ),
  )
}

let clockTicks: number | undefined
/** CPU time (user + system, every thread) a process has used so far, in ms; undefined where /proc is missing. */
export async function cpuTimeMs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
  } catch {
    return undefined
  }
}
