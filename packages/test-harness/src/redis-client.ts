import { Redis } from 'ioredis'

/**
 * Connections to the private Redis servers for a test's own assertions (INFO, PTTL, MEMORY USAGE,
 * CLUSTER ..., MONITOR), over ioredis. Unlike a service's connection these never reconnect and
 * never queue: a command to a server that is gone fails at once, one that gets no answer fails
 * after the timeout.
 */

const HOST = '127.0.0.1'

/** A reply as ioredis gives it for `call`: status and bulk strings, integers, nil, arrays. */
export type RespValue = string | number | null | RespValue[]

export interface RespClient {
  /** Sends one command; resolves with its reply, rejects on an error reply, a timeout or a closed connection. */
  call(...args: Array<string | number>): Promise<RespValue>
  close(): Promise<void>
}

export interface ConnectOptions {
  host?: string
  /** Bound of the connection and of each command; default 5 s. */
  timeoutMs?: number
  /** AUTH with this password (requirepass). */
  password?: string
}

function plainRedis(port: number, opts: ConnectOptions & { monitor?: boolean }): Redis {
  const timeoutMs = opts.timeoutMs ?? 5000
  const redis = new Redis({
    host: opts.host ?? HOST,
    port,
    ...(opts.password === undefined ? {} : { password: opts.password }),
    ...(opts.monitor ? { monitor: true } : {}),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  // Failures reach the caller through the command's promise; the event would only be unhandled.
  redis.on('error', () => undefined)
  return redis
}

/**
 * The name ioredis is given: upper case, so that no reply transformer of its own applies (it
 * turns a lower-case `hgetall`'s array into an object) and the reply is the server's; the
 * subscribe commands in lower case, the spelling ioredis keeps its subscriptions under.
 */
function commandName(command: string | number): string {
  const name = String(command)
  return /^[ps]?(un)?subscribe$/i.test(name) ? name.toLowerCase() : name.toUpperCase()
}

/** Connects a client to host:port (rejects after `timeoutMs`). */
export async function connectResp(port: number, opts: ConnectOptions = {}): Promise<RespClient> {
  const redis = plainRedis(port, opts)
  try {
    await redis.connect()
  } catch (err) {
    redis.disconnect()
    throw err
  }
  return {
    call: async (command, ...args) => (await redis.call(commandName(command), ...args)) as RespValue,
    async close() {
      redis.disconnect()
    },
  }
}

/** Runs `fn` with a new connection, closed afterwards. */
export async function withClient<T>(port: number, fn: (c: RespClient) => Promise<T>, opts: ConnectOptions = {}): Promise<T> {
  const c = await connectResp(port, { timeoutMs: 2000, ...opts })
  try {
    return await fn(c)
  } finally {
    await c.close()
  }
}

export interface MonitoredCommand {
  /** `lua` for a command run by a script, else the client's `ip:port`. */
  source: string
  /** Command name (lower case) and arguments. */
  args: string[]
}

export interface RedisMonitor {
  /** Every command seen so far, in execution order (the server's MONITOR feed). */
  readonly commands: MonitoredCommand[]
  /** Resolves once a command matching `predicate` has been seen (rejects after `timeoutMs`). */
  waitFor(predicate: (c: MonitoredCommand) => boolean, timeoutMs?: number): Promise<MonitoredCommand>
  close(): Promise<void>
}

/**
 * Opens a MONITOR connection to a server; resolves once the server has started the feed. To know
 * that everything before a point has been seen, send a marker (e.g. `ECHO <unique>`) on another
 * connection and waitFor it: the feed is in order.
 */
export async function monitorRedis(port: number, opts: { host?: string } = {}): Promise<RedisMonitor> {
  const redis = plainRedis(port, { ...opts, monitor: true })
  const commands: MonitoredCommand[] = []
  const waiters = new Set<() => void>()
  redis.on('monitor', (_time: string, args: string[], source: string) => {
    const [name, ...rest] = args
    commands.push({ source, args: name === undefined ? [] : [name.toLowerCase(), ...rest] })
    for (const w of waiters) w()
  })
  let timer: NodeJS.Timeout | undefined
  const monitoring = new Promise<void>((resolve, reject) => {
    redis.once('monitoring', () => resolve())
    timer = setTimeout(() => reject(new Error(`MONITOR on port ${port} did not start within 5000 ms`)), 5000)
  })
  try {
    await redis.connect()
    await monitoring
  } catch (err) {
    redis.disconnect()
    throw err
  } finally {
    clearTimeout(timer)
  }
  return {
    commands,
    async waitFor(predicate, timeoutMs = 5000) {
      return await new Promise<MonitoredCommand>((resolve, reject) => {
        const check = (): void => {
          const found = commands.find(predicate)
          if (found === undefined) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`MONITOR: no matching command within ${timeoutMs} ms`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
    async close() {
      redis.disconnect()
    },
  }
}

/** Parses an INFO reply into field → value. */
export function parseInfo(reply: RespValue): Record<string, string> {
  const out: Record<string, string> = {}
  if (typeof reply !== 'string') return out
  for (const line of reply.split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}
