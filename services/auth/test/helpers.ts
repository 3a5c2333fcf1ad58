import { ConfigError } from '@gatehouse/service-kit'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { buildApp, type BuildOptions } from '../src/app.js'
import { createRuntime } from '../src/runtime/bootstrap.js'
import { loadConfig, type AuthConfig } from '../src/config.js'
import type { AuthDeps } from '../src/runtime/deps.js'

/** A clock tests advance by hand (ms). */
export class TestClock {
  constructor(public ms: number = Date.UTC(2026, 0, 1)) {}
  now = (): number => this.ms
  advance(seconds: number): void {
    this.ms += seconds * 1000
  }
}

/** Captures every log line the app writes, for redaction and audit assertions. */
export class LogCapture extends Writable {
  readonly lines: string[] = []
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l) this.lines.push(l)
    cb()
  }
  events(name: string): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === name)
  }
  get text(): string {
    return this.lines.join('\n')
  }
}

export interface TestApp {
  app: FastifyInstance
  deps: AuthDeps
  config: AuthConfig
  clock: TestClock
  logs: LogCapture
  close(): Promise<void>
}

/** The auth app on the in-memory store with the dev config and a test clock. */
export async function makeApp(env: Record<string, string> = {}, options: BuildOptions = {}): Promise<TestApp> {
  const clock = new TestClock()
  const config = await loadConfig({ LOG_LEVEL: 'info', ...env })
  const logs = new LogCapture()
  const silent = { warn() {}, info() {} }
  const runtime = await createRuntime(config, silent, clock.now)
  const app = await buildApp(runtime.deps, { logStream: logs, ...options })
  await app.ready()
  return {
    app,
    deps: runtime.deps,
    config,
    clock,
    logs,
    async close() {
      await app.close()
      await runtime.close()
    },
  }
}

export function basic(id: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')
}

export function form(params: Record<string, string>): string {
  return new URLSearchParams(params).toString()
}

/** POST /token as the `cli` demo client. */
export async function token(app: FastifyInstance, params: Record<string, string>, auth: string | null = basic('cli', 'cli-secret')) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (auth) headers.authorization = auth
  return await app.inject({ method: 'POST', url: '/token', headers, payload: form(params) })
}

export async function passwordLogin(app: FastifyInstance, username = 'alice', password = 'alice-password') {
  return await token(app, { grant_type: 'password', username, password })
}

/** The problems loadConfig names for an environment ([] when it is valid). */
export async function configProblems(env: Record<string, string>): Promise<string[]> {
  try {
    await loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
  return []
}
