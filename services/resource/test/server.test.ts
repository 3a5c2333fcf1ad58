import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { AUDIENCE, startFakeIssuer } from '@gatehouse/test-harness'

/** src/server.ts as a real process: configuration errors, listening, graceful shutdown. */

const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))

interface Proc {
  child: ChildProcess
  lines: Record<string, unknown>[]
  stderr: () => string
  /** Resolves with the first log line matching, or rejects after `ms`. */
  waitForLine(match: (line: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>>
  exited: Promise<number | null>
}

function run(env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions', 'gatehouse-source', SERVER], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: Record<string, unknown>[] = []
  const waiters = new Set<(line: Record<string, unknown>) => void>()
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>
    try {
      line = JSON.parse(text) as Record<string, unknown>
    } catch {
      return
    }
    lines.push(line)
    for (const w of waiters) w(line)
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLine: (match, ms, what) =>
      new Promise((resolve, reject) => {
        const found = lines.find(match)
        if (found !== undefined) return resolve(found)
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stderr: ${stderr}`)), ms)
        const w = (line: Record<string, unknown>): void => {
          if (!match(line)) return
          clearTimeout(timer)
          waiters.delete(w)
          resolve(line)
        }
        waiters.add(w)
      }),
  }
}

t.test('invalid configuration: exit 1, every bad variable named on stderr', async (t) => {
  const p = run({ PORT: 'eighty', ISSUER: 'nope', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' })
  t.equal(await p.exited, 1)
  for (const name of ['PORT', 'ISSUER', 'LOG_LEVEL', 'REDIS_URL']) t.match(p.stderr(), new RegExp(`- ${name} `), name)
  t.equal(p.lines.length, 0, 'nothing was started')
})

t.test('serves, then on SIGTERM finishes the request in flight and exits 0', async (t) => {
  const auth = await startFakeIssuer()
  t.teardown(() => auth.close())
  // Hold the first JWKS response: a request arriving meanwhile waits on it, in flight.
  let release!: () => void
  auth.holdJwks = new Promise<void>((resolve) => (release = resolve))
  // debug: the "incoming request" line says the request arrived.
  const p = run({ ISSUER: auth.issuer, AUDIENCE, PORT: '0', LOG_LEVEL: 'debug' })
  const listening = await p.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at'), 20_000, 'listen')
  const base = /(http:\/\/127\.0\.0\.1:\d+)/.exec(listening.msg as string)![1]!

  const notReady = await fetch(`${base}/readyz`)
  t.equal(notReady.status, 503, 'not ready before the keys are loaded')
  await notReady.body?.cancel()

  const inFlight = fetch(`${base}/me`, { headers: { authorization: `Bearer ${auth.userToken()}` } })
  await p.waitForLine((l) => l.msg === 'incoming request' && (l.req as { url?: string } | undefined)?.url === '/me', 10_000, 'the request to arrive')
  p.child.kill('SIGTERM')
  await p.waitForLine((l) => l.event === 'service.stopping', 10_000, 'shutdown to begin')
  release()
  const res = await inFlight
  t.equal(res.status, 200, 'the in-flight request completed')
  t.equal(((await res.json()) as { sub: string }).sub, 'user-alice')
  t.equal(await p.exited, 0)
  t.ok(p.lines.some((l) => l.event === 'service.stopped'))
  const text = JSON.stringify(p.lines)
  t.notMatch(text, /Bearer ey/, 'no authorization header in the logs')
})
