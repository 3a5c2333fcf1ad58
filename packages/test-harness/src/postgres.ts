import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { chown, cp, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from './ports.js'

/**
 * A private PostgreSQL server for tests, as startRedis() is for Redis: its own data directory in
 * a temporary folder, on a free port of 127.0.0.1, never the machine's shared server. Binaries
 * come from Debian's `postgresql` package (scripts/test.sh installs it).
 *
 * `initdb` costs about a second, so it runs once per machine and user into a template directory
 * that each server copies (tens of milliseconds). As root, the server runs as the `postgres`
 * user (initdb refuses root). The server is a child of this process (not daemonized by pg_ctl),
 * so stop() and kill() act on it directly, and a watchdog kills it should this process die
 * without running its exit hooks, as the Redis servers' does.
 */

const HOST = '127.0.0.1'
const run = promisify(execFile)

export interface StartPostgresOptions {
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>
  /** Default 30 s. */
  readyTimeoutMs?: number
}

export interface PostgresServer {
  host: string
  port: number
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication on loopback). */
  url: string
  /** The URL of database `name` on this server. */
  databaseUrl(name: string): string
  /** Creates a database (a fresh name when none is given) and returns its URL. */
  createDatabase(name?: string, opts?: { template?: string }): Promise<string>
  /** Runs SQL as the superuser on database `postgres` (or `database`). */
  query(sql: string, params?: unknown[], database?: string): Promise<pg.QueryResult>
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>
  /** Kills the server at once (SIGKILL on the postmaster): the data directory stays. */
  kill(): Promise<void>
  /** Starts it again on the same port with the same data (after kill() or as a restart). */
  restart(): Promise<void>
  /** Freezes the server, its open connections' backends included (SIGSTOP): connections stay open, nothing answers. */
  pause(): void
  resume(): void
}

let databases = 0

/** Starts a private PostgreSQL on a free loopback port. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBin()
  const owner = await serverUser()
  const template = await templateDir(bin, owner)
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-pg-'))
  const data = join(dir, 'data')
  await cp(template, data, { recursive: true, preserveTimestamps: true })
  if (owner) await chownTree(dir, owner)
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    let proc: Launched | null
    try {
      proc = await launch(bin, owner, dir, port, opts.settings ?? {}, readyTimeoutMs)
    } catch (err) {
      lastError = err
      continue
    }
    let paused: number[] = []
    const url = `postgres://postgres@${HOST}:${port}/postgres`
    const databaseUrl = (name: string) => `postgres://postgres@${HOST}:${port}/${encodeURIComponent(name)}`
    const query = async (sql: string, params: unknown[] = [], database = 'postgres') => {
      const client = new pg.Client({ connectionString: databaseUrl(database), connectionTimeoutMillis: 5000 })
      await client.connect()
      try {
        return await client.query(sql, params)
      } finally {
        await client.end()
      }
    }
    return {
      host: HOST,
      port,
      url,
      databaseUrl,
      query,
      async createDatabase(name = `test_${process.pid}_${++databases}`, o = {}) {
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`unsafe database name ${name}`)
        await query(`CREATE DATABASE ${name}${o.template ? ` TEMPLATE ${o.template}` : ''}`)
        return databaseUrl(name)
      },
      async stop() {
        const p = proc
        proc = null
        if (p) await p.stop('SIGINT')
        await rm(dir, { recursive: true, force: true })
      },
      async kill() {
        const p = proc
        proc = null
        // A SIGKILLed postmaster leaves its backends running until they notice, and one busy with
        // a client's connection may still answer it: kill them too, as a crashed host would.
        const backends = postmasterChildren(data)
        if (p) await p.stop('SIGKILL')
        for (const pid of backends) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // already gone
          }
        }
      },
      async restart() {
        const p = proc
        proc = null
        if (p) await p.stop('SIGINT')
        // After kill() the old backends take a moment to notice and release the data directory;
        // until then the new postmaster refuses to start, so try again within the bound.
        const deadline = Date.now() + readyTimeoutMs
        for (;;) {
          try {
            proc = await launch(bin, owner, dir, port, opts.settings ?? {}, readyTimeoutMs)
            return
          } catch (err) {
            if (Date.now() > deadline) throw err
            await new Promise((r) => setTimeout(r, 100))
          }
        }
      },
      pause() {
        // The postmaster and every server process it forked: the open connections' backends
        // would otherwise go on answering what is sent on them.
        const pid = proc?.child.pid
        if (pid === undefined) return
        paused = [pid, ...childrenOf(pid)]
        for (const p of paused) signal(p, 'SIGSTOP')
      },
      resume() {
        for (const p of paused.reverse()) signal(p, 'SIGCONT')
        paused = []
      },
    }
  }
  await rm(dir, { recursive: true, force: true })
  throw lastError instanceof Error ? lastError : new Error('could not start postgres')
}

/** The processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry))
    } catch {
      // Gone meanwhile.
    }
  }
  return out
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // Exited meanwhile.
  }
}

/** Where initdb, postgres and friends are: PATH first, else Debian's versioned folder. */
export function postgresBin(): string {
  for (const p of (process.env.PATH ?? '').split(':')) {
    if (p && existsSync(join(p, 'initdb')) && existsSync(join(p, 'postgres'))) return p
  }
  const base = '/usr/lib/postgresql'
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin')
  throw new Error('PostgreSQL is not installed (apt-get install -y postgresql; scripts/test.sh does it)')
}

interface Owner {
  uid: number
  gid: number
}

/** As root the server must run as `postgres` (initdb and postgres refuse root); otherwise as us. */
async function serverUser(): Promise<Owner | null> {
  if (process.getuid?.() !== 0) return null
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim())
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
  return { uid, gid }
}

async function chownTree(path: string, owner: Owner): Promise<void> {
  await run('chown', ['-R', `${owner.uid}:${owner.gid}`, path])
}

/** One initdb per machine, user and version; made in a temporary folder and renamed into place. */
async function templateDir(bin: string, owner: Owner | null): Promise<string> {
  const version = (await run(join(bin, 'postgres'), ['--version'])).stdout.trim().replace(/[^\w.]+/g, '_')
  const target = join(tmpdir(), `gatehouse-pg-template-${process.getuid?.() ?? 'u'}-${version}`)
  if (existsSync(join(target, 'PG_VERSION'))) return target
  const work = await mkdtemp(join(tmpdir(), 'gatehouse-pg-initdb-'))
  if (owner) await chown(work, owner.uid, owner.gid)
  const data = join(work, 'data')
  await run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    env: { PATH: process.env.PATH ?? '', LANG: 'C' },
  })
  try {
    await rename(data, target)
  } catch {
    // Another test process made it first: use theirs.
  }
  await rm(work, { recursive: true, force: true })
  if (!existsSync(join(target, 'PG_VERSION'))) throw new Error(`initdb did not produce ${target}`)
  return target
}

interface Launched {
  child: ChildProcess
  stop(signal: NodeJS.Signals): Promise<void>
}

const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL')
})

async function launch(bin: string, owner: Owner | null, dir: string, port: number, settings: Record<string, string>, readyTimeoutMs: number): Promise<Launched> {
  const all: Record<string, string> = {
    listen_addresses: HOST,
    unix_socket_directories: dir,
    fsync: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    logging_collector: 'off',
    ...settings,
  }
  const args = ['-D', join(dir, 'data'), '-p', String(port), ...Object.entries(all).flatMap(([k, v]) => ['-c', `${k}=${v}`])]
  await mkdir(dir, { recursive: true })
  const log: string[] = []
  const child = spawn(join(bin, 'postgres'), args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    env: { PATH: process.env.PATH ?? '', LANG: 'C' },
  })
  running.add(child)
  child.unref()
  child.stderr!.on('data', (b: Buffer) => {
    log.push(b.toString('utf8'))
    if (log.length > 50) log.shift()
  })
  ;(child.stderr as unknown as Socket).unref?.()
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    running.delete(child)
    resolve()
  }))
  let died = false
  void exited.then(() => (died = true))
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject))
  spawnError.catch(() => undefined)

  // Kills the server if this process dies without its exit hooks (see redis.ts).
  const watchdog = child.pid === undefined
    ? null
    : spawn('sh', ['-c', 'read _ ; kill -9 "$1" 2>/dev/null; rm -rf "$2"', 'pg-watchdog', String(child.pid), dir], { stdio: ['pipe', 'ignore', 'ignore'] })
  if (watchdog) {
    watchdog.unref()
    ;(watchdog.stdin as unknown as Socket | null)?.unref?.()
    watchdog.on('error', () => undefined)
    watchdog.stdin?.on('error', () => undefined)
  }
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    watchdog?.kill('SIGKILL')
    if (died) return
    child.kill('SIGCONT')
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
  const deadline = Date.now() + readyTimeoutMs
  try {
    for (;;) {
      if (died) throw new Error('postgres exited')
      const client = new pg.Client({ host: HOST, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 })
      try {
        await client.connect()
        await client.query('SELECT 1')
        await client.end()
        break
      } catch {
        await client.end().catch(() => undefined)
      }
      if (Date.now() > deadline) throw new Error(`not ready after ${readyTimeoutMs} ms`)
      await Promise.race([spawnError, new Promise((r) => setTimeout(r, 50))])
    }
  } catch (err) {
    await stop('SIGKILL')
    const tail = log.join('').split('\n').slice(-8).join('\n')
    const file = await readFile(join(dir, 'log'), 'utf8').catch(() => '')
    throw new Error(`postgres on port ${port} did not start: ${(err as Error).message}\n${tail}${file}`)
  }
  return { child, stop }
}

/** The processes the postmaster of `data` started (its backends and workers), from /proc. */
function postmasterChildren(data: string): number[] {
  let postmaster: number
  try {
    postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    return []
  }
  if (!Number.isSafeInteger(postmaster) || postmaster <= 0) return []
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ...", comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === postmaster) children.push(Number(entry))
    } catch {
      // the process ended meanwhile
    }
  }
  return children
}
