import type { ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { AUTH_SCRIPT, eventually, freePort, startService, type ServiceProcess } from '@gatehouse/test-harness'

/** Helpers for the operations tests (real processes over real HTTP); the stack and HTTP helpers are the harness's. */

/**
 * Every complete line a child process writes from now on (stdout and stderr), reassembled across
 * pipe chunks: a chunk may end in the middle of a line.
 */
export function collectLines(child: ChildProcess): string[] {
  const lines: string[] = []
  for (const stream of [child.stdout, child.stderr]) {
    let partial = ''
    stream?.on('data', (b: Buffer) => {
      const parts = (partial + b.toString('utf8')).split('\n')
      partial = parts.pop() ?? ''
      for (const l of parts) if (l) lines.push(l)
    })
    stream?.on('end', () => {
      if (partial) lines.push(partial)
    })
  }
  return lines
}

/** Resolves when a line of `output` matches (bounded). */
export async function waitForLine(output: string[], pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return await eventually(`a log line matching ${pattern}`, async () => output.find((l) => pattern.test(l)), (l) => l !== undefined, timeoutMs) as string
}

/** True when a new TCP connection to the port is refused (nothing listens any more). */
export async function refused(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

export interface SlowRequest {
  /** Sends the rest of the body. */
  finish(): void
  response: Promise<{ status: number; body: string }>
}

/**
 * A request whose headers and first half of the body are sent at once and the rest only when
 * finish() is called: the server has the request in flight for as long as the test wants.
 */
export function slowRequest(port: number, opts: { method: string; path: string; headers: Record<string, string>; body: string; requestId: string }): SlowRequest {
  const half = Math.floor(opts.body.length / 2)
  const req = httpRequest({
    host: '127.0.0.1',
    port,
    method: opts.method,
    path: opts.path,
    agent: false,
    headers: { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)), 'x-request-id': opts.requestId },
  })
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.once('error', reject)
    })
    req.once('error', reject)
  })
  req.flushHeaders()
  req.write(opts.body.slice(0, half))
  return { finish: () => req.end(opts.body.slice(half)), response }
}

/** Prometheus text format → `name{labels}` → value (labels as written by prom-client). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^(\S+?(?:\{.*\})?)\s+(\S+)$/.exec(line)
    if (m) out.set(m[1]!, Number(m[2]))
  }
  return out
}

export async function scrape(baseUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${baseUrl}/metrics`)
  if (res.status !== 200) throw new Error(`${baseUrl}/metrics answered ${res.status}`)
  if (!/^text\/plain/.test(res.headers.get('content-type') ?? '')) throw new Error('not the Prometheus text format')
  return parseMetrics(await res.text())
}

/** Sum of every series of a metric whose labels include all of `labels`. */
export function metric(series: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const [key, value] of series) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key)
    if (!m || m[1] !== name) continue
    const have = m[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) sum += value
  }
  return sum
}

/**
 * What the auth replicas of one Deployment share (issue 6): one signing-key file (an RSA-2048
 * key, mode 0600, removed at teardown) and one COOKIE_SECRET, which keys the refresh-token MACs.
 */
export async function sharedAuthSecrets(t: Test): Promise<{ SIGNING_KEYS_FILE: string; COOKIE_SECRET: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-replicas-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const keysFile = join(dir, 'signing-keys.json')
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })
  await writeFile(keysFile, JSON.stringify({ keys: [jwk] }), { mode: 0o600 })
  return { SIGNING_KEYS_FILE: keysFile, COOKIE_SECRET: randomBytes(32).toString('base64url') }
}

/** A replica as a real process, ready (/readyz) and stopped at teardown. */
export async function startReplica(t: Test, script: string, env: Record<string, string>, port?: number): Promise<ServiceProcess> {
  const svc = await startService({ script, port: port ?? (await freePort()), env, readyPath: '/readyz', timeoutMs: 60_000 })
  t.teardown(() => svc.stop())
  return svc
}

/**
 * `count` auth replicas of one Deployment: the shared secrets, `env` (the Redis topology), and one
 * public issuer URL, for which the first replica's address stands.
 */
export async function startAuthReplicas(t: Test, count: number, env: Record<string, string>): Promise<{ issuer: string; replicas: ServiceProcess[] }> {
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()))
  const issuer = `http://127.0.0.1:${ports[0]!}`
  const shared = { ISSUER: issuer, LOG_LEVEL: 'info', ...(await sharedAuthSecrets(t)), ...env }
  const replicas = await Promise.all(ports.map((port) => startReplica(t, AUTH_SCRIPT, shared, port)))
  return { issuer, replicas }
}
