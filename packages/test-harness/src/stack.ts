import { fileURLToPath } from 'node:url'
import { freePort } from './ports.js'
import { startService, type ServiceProcess } from './process.js'
import { startRedis, type RedisServer } from './redis.js'

/**
 * The end-to-end stack of the test/e2e, test/faults and test/ops suites: a private redis-server,
 * the built auth service and (unless told otherwise) the built resource service, as real
 * processes on free 127.0.0.1 ports, each ready (/readyz) before this resolves. Run
 * `pnpm exec tsc -b` first: the services start from their dist/.
 */

/** The repository root (this file is packages/test-harness/{src,dist}/stack.*). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))
export const AUTH_SCRIPT = `${REPO_ROOT}services/auth/dist/server.js`
export const RESOURCE_SCRIPT = `${REPO_ROOT}services/resource/dist/server.js`
/** The built `gatehouse` command line. */
export const CLI_SCRIPT = `${REPO_ROOT}services/auth/dist/cli/main.js`

/** tap's `t` as far as the stack needs it: every process started is stopped at teardown. */
export interface Teardown {
  teardown(fn: () => unknown): void
}

export interface StackOptions {
  /** Environment of the auth service (ISSUER and REDIS_URL are set; LOG_LEVEL defaults to info). */
  auth?: Record<string, string>
  /** Environment of the resource service (ISSUER and REDIS_URL are set), or false for none. */
  resource?: Record<string, string> | false
  /** A Redis server the test started (and stops) itself; default a new one, stopped at teardown. */
  redis?: RedisServer
  /** The REDIS_URL the auth service gets instead of the server's own (e.g. a proxy's in front of it). */
  authRedisUrl?: string
  /** Auth replicas sharing that environment (and Redis), started one after the other; default 1. The first one's URL is the ISSUER. */
  authReplicas?: number
  /** Bound of each service's start-up; default 60 s. */
  timeoutMs?: number
}

export interface AuthStack {
  redis: RedisServer
  /** The auth service's URL, its ISSUER. */
  issuer: string
  /** The (first) auth replica. */
  auth: ServiceProcess
  /** Every auth replica, `auth` first. */
  replicas: ServiceProcess[]
  /** The auth replicas' whole environment (for the CLI against the same Redis and keys). */
  authEnv: Record<string, string>
}

export interface Stack extends AuthStack {
  resource: ServiceProcess
}

export async function startStack(t: Teardown, options: StackOptions & { resource: false }): Promise<AuthStack>
export async function startStack(t: Teardown, options?: StackOptions & { resource?: Record<string, string> }): Promise<Stack>
export async function startStack(t: Teardown, options: StackOptions = {}): Promise<AuthStack | Stack> {
  let redis = options.redis
  if (redis === undefined) {
    const own = await startRedis()
    t.teardown(() => own.stop())
    redis = own
  }
  const ports: number[] = []
  for (let i = 0; i < (options.authReplicas ?? 1); i++) ports.push(await freePort())
  const issuer = `http://127.0.0.1:${ports[0]}`
  const authEnv = { LOG_LEVEL: 'info', ...options.auth, ISSUER: issuer, REDIS_URL: options.authRedisUrl ?? redis.url }
  const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }
  const replicas: ServiceProcess[] = []
  for (const port of ports) {
    const replica = await startService({ script: AUTH_SCRIPT, port, env: authEnv, readyPath: '/readyz', ...timeout })
    t.teardown(() => replica.stop())
    replicas.push(replica)
  }
  const auth = replicas[0]!
  if (options.resource === false) return { redis, issuer, auth, replicas, authEnv }
  const resource = await startService({
    script: RESOURCE_SCRIPT,
    port: await freePort(),
    env: { LOG_LEVEL: 'info', ...options.resource, ISSUER: issuer, REDIS_URL: redis.url },
    readyPath: '/readyz',
    ...timeout,
  })
  t.teardown(() => resource.stop())
  return { redis, issuer, auth, replicas, authEnv, resource }
}
