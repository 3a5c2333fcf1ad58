import type { RevocationPublisher } from '../src/families/revocation-publisher.js'
import { ConfigError } from '@gatehouse/service-kit'
import { ManualClock, startRedis, type RedisServer, type RespClient } from '@gatehouse/test-harness'
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, type BuildOptions } from '../src/app.js'
import { createRuntime, type Runtime } from '../src/runtime/bootstrap.js'
import { loadConfig, type AuthConfig } from '../src/config.js'
import type { AuthDeps } from '../src/runtime/deps.js'
import { createRedis, waitForRedis } from '../src/store/redis-connection.js'

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
  clock: ManualClock
  logs: LogCapture
  close(): Promise<void>
}

/** The auth app on the in-memory store with the dev config and a test clock. */
export async function makeApp(env: Record<string, string> = {}, options: BuildOptions = {}): Promise<TestApp> {
  return await bootApp(await loadConfig({ LOG_LEVEL: 'info', ...env }), new ManualClock(), options)
}

/** The auth app for `config` on `clock`, its logs captured; listening on 127.0.0.1:`listenPort` when given. */
/** Keeps what the in-memory family store announces (the service's own publisher drops it). */
export class RecordingRevocationPublisher implements RevocationPublisher {
  readonly published: { sid: string; exp: number }[] = []
  async publish(sid: string, exp: number): Promise<void> {
    this.published.push({ sid, exp })
  }
}

export async function bootApp(config: AuthConfig, clock: ManualClock, options: BuildOptions = {}, listenPort?: number): Promise<TestApp> {
  const logs = new LogCapture()
  const runtime = await createRuntime(config, { warn() {}, info() {} }, clock.now)
  // Without Redis the memory store announces to deps.revocations: record it for assertions.
  if (!config.redis) runtime.deps.revocations = new RecordingRevocationPublisher()
  const app = await buildApp(runtime.deps, { logStream: logs, ...options })
  if (listenPort !== undefined) await app.listen({ host: '127.0.0.1', port: listenPort })
  else await app.ready()
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

/** createRuntime, tried again until Redis (Sentinel, Cluster) answers: the directory is seeded at start. */
export async function createRuntimeWhenReachable(config: AuthConfig, timeoutMs = 20_000): Promise<Runtime> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await createRuntime(config, { warn() {}, info() {} })
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
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

export interface PrivateRedis {
  server: RedisServer
  /** The service's kind of connection (createRedis), connected. */
  redis: ReturnType<typeof createRedis>
  /** A connection for the test's own assertions. */
  admin: RespClient
}

/** A private redis-server for a test file, connected as the service connects and for assertions; all closed at teardown. */
export async function privateRedis(t: Pick<Test, 'teardown'>, commandTimeoutMs = 2000): Promise<PrivateRedis> {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const redis = createRedis({ url: server.url, commandTimeoutMs })
  t.teardown(() => redis.disconnect())
  await waitForRedis(redis)
  const admin = await server.client()
  t.teardown(() => admin.close())
  return { server, redis, admin }
}
