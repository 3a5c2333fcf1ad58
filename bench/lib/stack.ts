import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exportJWK, generateKeyPair } from 'jose'
import { freePort, startRedis, startRedisCluster, type RedisClusterHandle, type RedisServer, type RespClient } from '../../packages/test-harness/src/index.js'
import { spawnChild, type Child } from './children.js'

/**
 * What a scenario starts: a private redis-server, the auth service as production runs it, the
 * resource service (with the benchmark's reference routes) and node-oidc-provider. Each returns a
 * handle whose stop() it must call; Scope collects them so a scenario stops everything it
 * started, in reverse order, also when it fails.
 */

export const CONFIG_FILE = fileURLToPath(new URL('../fixtures/auth-config.json', import.meta.url))
export const CC_CLIENT = { id: 'bench-service', secret: 'bench-service-secret' }
export const APP_CLIENT = { id: 'bench-app', secret: 'bench-app-secret' }
export const USERS = Array.from({ length: 8 }, (_, i) => ({ username: `bench-${i}`, password: `bench-password-${i}` }))
export const AUDIENCE = 'api://resource'

export function basic(id: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')
}

export const FORM = 'application/x-www-form-urlencoded'


/** Where servers and CPU references run, and where load generators run (see children.ts). */
export interface Placement {
  server: number | undefined
  load: number | undefined
}

export class Scope {
  readonly #stops: (() => Promise<void>)[] = []
  #closed = false
  /** Registers how to stop something; once the scope is closed (a start that lost a race with a failure), stops it at once. */
  add(stop: () => Promise<void>): void {
    if (this.#closed) void stop().catch(() => undefined)
    else this.#stops.push(stop)
  }
  /** Waits for something that starts, and stops it with the scope. */
  async own<T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> {
    const thing = await starting
    this.add(() => thing.stop())
    return thing
  }
  async close(): Promise<void> {
    this.#closed = true
    for (const stop of this.#stops.splice(0).reverse()) {
      await stop().catch(() => undefined)
    }
  }
}

export async function privateRedis(scope: Scope): Promise<RedisServer> {
  // No persistence: the benchmark measures the service, not fsync.
  const redis = await startRedis({ args: ['--save', '', '--appendonly', 'no'] })
  scope.add(() => redis.stop())
  return redis
}

/** A private Redis Cluster of `masters` masters, no replicas, no persistence; `REDIS_CLUSTER_NODES` for the auth service. */
export async function privateCluster(scope: Scope, masters = 3): Promise<{ cluster: RedisClusterHandle; nodesEnv: string; masters: number[] }> {
  const cluster = await startRedisCluster({ masters, replicasPerMaster: 0, args: ['--save', '', '--appendonly', 'no'] })
  scope.add(() => cluster.stop())
  return { cluster, nodesEnv: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','), masters: await cluster.masters() }
}

/** A client of the private Redis, for its statistics; closed with the scope. */
export async function redisAdmin(scope: Scope, redis: RedisServer): Promise<RespClient> {
  const admin = await redis.client()
  scope.add(() => admin.close())
  return admin
}

export interface ServerHandle {
  url: string
  port: number
  pid: number
  child: Child
}

async function waitReady(child: Child, url: string, path: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void child.exited.then(() => (exited = true))
  for (;;) {
    if (exited) throw new Error(`${child.name} exited before it was ready:\n${child.tail()}`)
    try {
      const res = await fetch(url + path)
      if (res.ok) return
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${child.name} was not ready within ${timeoutMs} ms:\n${child.tail()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export interface AuthOptions {
  /** A standalone Redis; or leave it out and put REDIS_CLUSTER_NODES in `env`. */
  redisUrl?: string
  cpu: number | undefined
  /** Extra environment (e.g. LOG_LEVEL). */
  env?: Record<string, string>
  nodeFlags?: string[]
  /** A replica of a Deployment (authReplicaSecrets): its issuer, key and secrets instead of its own. */
  shared?: AuthShared
}

/** What the auth replicas of one Deployment share: the issuer URL, the signing key, the cookie and refresh-token secrets. */
export interface AuthShared {
  issuer: string
  keysFile: string
  cookieSecret: string
  refreshTokenSecret: string
}

async function signingKeyFile(scope: Scope): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-'))
  scope.add(() => rm(dir, { recursive: true, force: true }))
  const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })
  const keysFile = join(dir, 'signing-keys.json')
  await writeFile(keysFile, JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig' }] }), { mode: 0o600 })
  return keysFile
}

/** Secrets for `startAuth(…, { shared })` replicas; `issuer` is the public URL they all name (one replica's address stands for it). */
export async function authReplicaSecrets(scope: Scope, issuer: string): Promise<AuthShared> {
  return { issuer, keysFile: await signingKeyFile(scope), cookieSecret: randomBytes(32).toString('base64url'), refreshTokenSecret: randomBytes(32).toString('base64url') }
}

/**
 * Load shedding off (service-kit overload.ts, on by default in production): a benchmark drives
 * a service to saturation on purpose, where an event loop lagging past 100 ms is the load it
 * asked for, not an overload to shed (with shedding on, minting the token pool on a busy
 * machine already met 503s). What is measured is what a request costs.
 */
export const NO_SHEDDING = { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_HEAP_MB: '0', OVERLOAD_MAX_QUEUE_MS: '0' } as const

/**
 * The auth service's own entry point (src/server.ts) in production mode: NODE_ENV=production,
 * Redis, a signing key file (one RSA-2048 key) and a cookie secret, the benchmark's clients and
 * users, LOG_LEVEL info (the default). Its log lines go to /dev/null: what they cost the service
 * (pino, the redaction, the write) is measured; a log shipper reading them would be another
 * process's work. (A pipe drained by this process is not an option: with both CPUs saturated the
 * reader falls behind, and pino's default stdout destination then buffers without bound.)
 */
export async function startAuth(scope: Scope, opts: AuthOptions & { port?: number }): Promise<ServerHandle> {
  const port = opts.port ?? (await freePort())
  const url = `http://127.0.0.1:${port}`
  const shared = opts.shared ?? { issuer: url, keysFile: await signingKeyFile(scope), cookieSecret: randomBytes(32).toString('base64url'), refreshTokenSecret: randomBytes(32).toString('base64url') }
  const child = spawnChild('auth', {
    script: 'services/auth/src/server.ts',
    cpu: opts.cpu,
    ...(opts.nodeFlags ? { nodeFlags: opts.nodeFlags } : {}),
    env: {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      ISSUER: shared.issuer,
      ...(opts.redisUrl === undefined ? {} : { REDIS_URL: opts.redisUrl }),
      AUTH_CONFIG_FILE: CONFIG_FILE,
      SIGNING_KEYS_FILE: shared.keysFile,
      COOKIE_SECRET: shared.cookieSecret,
      REFRESH_TOKEN_SECRET: shared.refreshTokenSecret,
      LOG_LEVEL: 'info',
      // No load shedding, but where a scenario asks for it (overload).
      ...NO_SHEDDING,
      ...opts.env,
    },
  })
  scope.add(() => child.stop())
  await waitReady(child, url, '/readyz')
  return { url, port, pid: child.pid, child }
}

/** The resource service with the reference routes (servers/resource.ts); `cache` on or off. */
export async function startResource(scope: Scope, opts: { issuer: string; cache: boolean; cpu: number | undefined; nodeFlags?: string[]; env?: Record<string, string> }): Promise<ServerHandle> {
  const port = await freePort()
  const child = spawnChild(`resource (cache ${opts.cache ? 'on' : 'off'})`, {
    script: 'bench/servers/resource.ts',
    args: ['--cache', opts.cache ? 'on' : 'off'],
    cpu: opts.cpu,
    ...(opts.nodeFlags ? { nodeFlags: opts.nodeFlags } : {}),
    env: { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), ISSUER: opts.issuer, AUDIENCE, LOG_LEVEL: 'info', ...NO_SHEDDING, ...opts.env },
  })
  scope.add(() => child.stop())
  await child.waitFor((m) => m.type === 'ready', 60_000)
  return { url: `http://127.0.0.1:${port}`, port, pid: child.pid, child }
}

/**
 * The resource service itself (services/resource/src/server.ts, production mode), with the
 * revocation feed when `redisUrl` is given; ready when /readyz answers 200.
 */
export async function startResourceService(scope: Scope, opts: { issuer: string; redisUrl?: string; cpu: number | undefined; env?: Record<string, string> }): Promise<ServerHandle> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawnChild('resource service', {
    script: 'services/resource/src/server.ts',
    cpu: opts.cpu,
    env: { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), ISSUER: opts.issuer, AUDIENCE, LOG_LEVEL: 'info', ...(opts.redisUrl === undefined ? {} : { REDIS_URL: opts.redisUrl }), ...NO_SHEDDING, ...opts.env },
  })
  scope.add(() => child.stop())
  await waitReady(child, url, '/readyz')
  return { url, port, pid: child.pid, child }
}

/** node-oidc-provider (servers/oidc-provider.ts), or with `lean` the floor of servers/lean-cc.ts: the same client and token. */
export async function startOidcProvider(scope: Scope, opts: { cpu: number | undefined; lean?: boolean }): Promise<ServerHandle> {
  const port = await freePort()
  const child = spawnChild(opts.lean === true ? 'lean-cc' : 'oidc-provider', {
    script: opts.lean === true ? 'bench/servers/lean-cc.ts' : 'bench/servers/oidc-provider.ts',
    cpu: opts.cpu,
    env: { NODE_ENV: 'production', PORT: String(port), CLIENT_ID: CC_CLIENT.id, CLIENT_SECRET: CC_CLIENT.secret, AUDIENCE, SCOPE: 'documents:read' },
  })
  scope.add(() => child.stop())
  await child.waitFor((m) => m.type === 'ready', 60_000)
  return { url: `http://127.0.0.1:${port}`, port, pid: child.pid, child }
}

/** POST /token with a form and HTTP Basic client authentication; the JSON answer (throws unless 200). */
export async function tokenRequest(url: string, client: { id: string; secret: string }, params: Record<string, string>): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { authorization: basic(client.id, client.secret), 'content-type': FORM },
    body: new URLSearchParams(params).toString(),
  })
  const body = (await res.json()) as Record<string, unknown>
  if (res.status !== 200) throw new Error(`POST /token answered ${res.status}: ${JSON.stringify(body)}`)
  return body
}

/** `n` client_credentials access tokens, `parallel` requests at a time. */
export async function serviceTokens(authUrl: string, n: number, parallel = 8): Promise<string[]> {
  const out: string[] = []
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < n) {
      next++
      const r = await tokenRequest(authUrl, CC_CLIENT, { grant_type: 'client_credentials', scope: 'documents:read' })
      out.push(r.access_token as string)
    }
  }
  await Promise.all(Array.from({ length: parallel }, lane))
  return out
}

/** `n` password logins (user i % 8), `parallel` at a time: each starts a refresh-token family. */
export async function logins(authUrl: string, n: number, parallel = 4): Promise<string[]> {
  const out: string[] = new Array<string>(n)
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      const u = USERS[i % USERS.length]!
      const r = await tokenRequest(authUrl, APP_CLIENT, { grant_type: 'password', username: u.username, password: u.password })
      out[i] = r.refresh_token as string
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, USERS.length) }, lane))
  return out
}
