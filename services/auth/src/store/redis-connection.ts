import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { StoreUnavailable } from './types.js'

export interface RedisHost {
  host: string
  port: number
}

/** Exactly one of `url`, `clusterNodes`, `sentinels` (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS). */
export interface RedisConnectionOptions {
  /** `redis://` or `rediss://` (credentials and TLS come from the URL). */
  url?: string
  clusterNodes?: RedisHost[]
  sentinels?: RedisHost[]
  /** The Sentinel master group name (REDIS_SENTINEL_NAME); required with `sentinels`. */
  sentinelName?: string
  /** ACL credentials for Cluster nodes or the Sentinel-managed master (a URL carries its own). */
  username?: string
  password?: string
  /** TLS to Cluster nodes or the Sentinel-managed master. */
  tls?: boolean
  /** A command that has no reply by then fails (default 1000 ms): a dead Redis yields a fast error. */
  commandTimeoutMs?: number
  /** Default 2000 ms. */
  connectTimeoutMs?: number
  /** Receives connection errors (the `error` event); they are otherwise dropped, since commands report them. */
  onError?: (err: Error) => void
  /** CLIENT SETNAME, for CLIENT LIST on the server (default `gatehouse`). */
  connectionName?: string
}

/** Backoff between reconnection attempts; the client never gives up by itself. */
function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000)
}

/**
 * A Redis (standalone or Sentinel) or Redis Cluster client tuned for a request path:
 *  - the offline queue is off, so a command issued while disconnected fails at once instead of
 *    waiting for a reconnection (the caller answers 503 temporarily_unavailable);
 *  - a command in flight when the connection drops is retried at most once, and every command is
 *    bounded by `commandTimeoutMs`, so nothing hangs;
 *  - the client reconnects by itself, with backoff, forever;
 *  - an `error` listener is always attached: ioredis emits `error` on every failed connection
 *    attempt, and an unhandled one would crash the process.
 * Commands fail until the first connection is ready; see waitForRedis.
 */
export function createRedis(opts: RedisConnectionOptions): Redis | Cluster {
  const problems: string[] = []
  const modes = [opts.url, opts.clusterNodes, opts.sentinels].filter((v) => v !== undefined).length
  if (modes !== 1) problems.push('exactly one of url, clusterNodes, sentinels is required')
  if (opts.url !== undefined && !/^rediss?:\/\//.test(opts.url)) problems.push('url must start with redis:// or rediss://')
  for (const name of ['clusterNodes', 'sentinels'] as const) {
    const hosts = opts[name]
    if (hosts === undefined) continue
    if (!Array.isArray(hosts) || hosts.length === 0) problems.push(`${name} must be a non-empty list of {host, port}`)
    else if (!hosts.every((h) => typeof h?.host === 'string' && h.host !== '' && Number.isInteger(h.port) && h.port > 0 && h.port < 65536)) {
      problems.push(`${name} has an invalid {host, port}`)
    }
  }
  if (opts.sentinels !== undefined && !opts.sentinelName) problems.push('sentinelName is required with sentinels')
  const commandTimeout = opts.commandTimeoutMs ?? 1000
  const connectTimeout = opts.connectTimeoutMs ?? 2000
  if (!Number.isInteger(commandTimeout) || commandTimeout <= 0) problems.push('commandTimeoutMs must be a positive integer')
  if (!Number.isInteger(connectTimeout) || connectTimeout <= 0) problems.push('connectTimeoutMs must be a positive integer')
  if (problems.length > 0) throw new TypeError(`invalid Redis options: ${problems.join('; ')}`)

  const onError = opts.onError ?? (() => undefined)
  const common: RedisOptions = {
    connectionName: opts.connectionName ?? 'gatehouse',
    commandTimeout,
    connectTimeout,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Never replay a command that was sent on a connection that died: its caller has been
    // answered (503) and has retried; a late replay of a rotation would look like reuse.
    autoResendUnfulfilledCommands: false,
    retryStrategy: reconnectDelay,
    // After a failover a connection may still point at a demoted master: reconnect to the new one.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  }
  const auth: RedisOptions = {
    ...(opts.username === undefined ? {} : { username: opts.username }),
    ...(opts.password === undefined ? {} : { password: opts.password }),
    ...(opts.tls ? { tls: {} } : {}),
  }

  let client: Redis | Cluster
  if (opts.clusterNodes !== undefined) {
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: reconnectDelay,
      // Bounded retries on MOVED/TRYAGAIN/CLUSTERDOWN during a failover (each 100 ms apart),
      // still capped by commandTimeoutMs.
      maxRedirections: 16,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: Math.min(commandTimeout, 1000),
      redisOptions: { ...common, ...auth },
    }
    client = new Cluster(opts.clusterNodes.map((n) => ({ host: n.host, port: n.port })), clusterOptions)
  } else if (opts.sentinels !== undefined) {
    client = new Redis({
      ...common,
      ...auth,
      sentinels: opts.sentinels.map((n) => ({ host: n.host, port: n.port })),
      name: opts.sentinelName as string,
      sentinelRetryStrategy: reconnectDelay,
    })
  } else {
    client = new Redis(opts.url as string, common)
  }
  client.on('error', onError)
  return client
}

/**
 * Resolves once the client is ready for commands (first connection, or after a reconnection);
 * rejects with StoreUnavailable after `timeoutMs`. For start-up and tests; request paths rely on
 * fast failures instead.
 */
export async function waitForRedis(client: Redis | Cluster, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('end', onEnd)
      if (err) reject(err)
      else resolve()
    }
    const onReady = (): void => done()
    const onEnd = (): void => done(new StoreUnavailable('redis: connection closed before it was ready'))
    const timer = setTimeout(() => done(new StoreUnavailable(`redis: not ready after ${timeoutMs} ms`)), timeoutMs)
    client.on('ready', onReady)
    client.on('end', onEnd)
  })
}
