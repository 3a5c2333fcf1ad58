import { RECENT_REVOCATIONS_KEY, REVOCATION_CHANNEL, decodeRevocation, type RevocationEvent } from '@gatehouse/service-kit'
import { Redis, type RedisOptions } from 'ioredis'
import type { Clock, VerifierLogger } from './options.js'

export interface RevocationFeedConfig {
  redis: string | RedisOptions
  clock: Clock
  logger: VerifierLogger
  /** Called for every event received, live or caught up. */
  onRevocation: (event: RevocationEvent) => void
  /** Called after each (re)connect once the recent set has been read. */
  onSynced: (count: number) => void
}

const CATCH_UP_RETRY_MS = 1000
/** Redirections followed at once before falling back to the retry delay (a slot moving while we read). */
const MAX_REDIRECTS = 3

/**
 * The subscriber side of DESIGN §6. Two connections, because a connection in
 * subscriber mode cannot run ZRANGEBYSCORE: one SUBSCRIBEs to the channel,
 * the other reads the recent-revocations set. On every (re)connect the order
 * is: subscribe first, then read the set, so an event is either in the set
 * read or arrives on the channel; nothing revoked while we were away slips
 * through. These are the only two commands issued, matching the ACL a
 * resource service gets in production.
 *
 * In a Redis Cluster the URL may name any node: published messages reach every node, but the
 * recent set lives on the master of its slot, and another node answers the read with `MOVED
 * <slot> <host:port>`. The reader then follows the redirection (a connection to that node, with
 * the same options) and reads again at once; after a failover it follows the next one.
 */
export class RevocationFeed {
  readonly #c: RevocationFeedConfig
  readonly #sub: Redis
  #cmd: Redis
  /** The reader follows a Cluster redirection (MOVED) rather than the subscriber's node. */
  #redirected = false
  #live = false
  #closed = false
  #errorReported = false
  #epoch = 0
  #retry: NodeJS.Timeout | undefined

  constructor(config: RevocationFeedConfig) {
    this.#c = config
    const overrides: RedisOptions = {
      lazyConnect: true,
      // We resubscribe ourselves on 'ready', to know when to read the recent set.
      autoResubscribe: false,
      connectionName: 'gatehouse-verifier-revocations',
    }
    const base = typeof config.redis === 'string' ? { ...overrides } : { ...config.redis, ...overrides }
    this.#sub = typeof config.redis === 'string' ? new Redis(config.redis, base) : new Redis(base)
    this.#cmd = this.#reader()

    // Without an 'error' listener ioredis reports "Unhandled error event" on every reconnect attempt.
    this.#sub.on('error', (err: Error) => {
      // One warning per outage; the reconnect attempts that follow are debug noise.
      if (this.#errorReported) this.#c.logger.debug({ err: err.message }, 'revocation feed: redis error')
      else this.#c.logger.warn({ err: err.message }, 'revocation feed: redis error; revocations are not received until it reconnects')
      this.#errorReported = true
    })
    this.#sub.on('ready', () => void this.#onReady())
    this.#sub.on('close', () => {
      if (this.#live) this.#c.logger.warn({}, 'revocation feed disconnected; reconnecting')
      this.#live = false
      this.#epoch++
    })
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel !== REVOCATION_CHANNEL) return
      const event = decodeRevocation(message)
      if (event === null) {
        this.#c.logger.warn({}, 'revocation feed: malformed message ignored')
        return
      }
      this.#c.onRevocation(event)
    })
  }

  /** The recent-set reader: the subscriber's node, or `at` (a Cluster redirection). */
  #reader(at?: { host: string; port: number }): Redis {
    const reader = this.#sub.duplicate({ connectionName: 'gatehouse-verifier-revocations-read', autoResubscribe: false, ...at })
    reader.on('error', (err: Error) => this.#c.logger.debug({ err: err.message }, 'revocation feed: redis error (reader)'))
    return reader
  }

  /** Replaces the reader (connected at once), closing the previous one. */
  #useReader(at: { host: string; port: number } | undefined): void {
    const previous = this.#cmd
    this.#cmd = this.#reader(at)
    this.#redirected = at !== undefined
    previous.disconnect()
    this.#cmd.connect().catch(() => {})
  }

  /** True while subscribed and caught up. */
  get live(): boolean {
    return this.#live
  }

  start(): void {
    if (this.#closed) return
    this.#sub.connect().catch(() => {}) // failures surface as 'error' events and reconnects
    this.#cmd.connect().catch(() => {})
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#live = false
    if (this.#retry !== undefined) clearTimeout(this.#retry)
    await Promise.all([quit(this.#sub), quit(this.#cmd)])
  }

  async #onReady(): Promise<void> {
    const epoch = ++this.#epoch
    try {
      await this.#sub.subscribe(REVOCATION_CHANNEL)
    } catch (err) {
      this.#c.logger.warn({ err: (err as Error).message }, 'revocation feed: SUBSCRIBE failed')
      return
    }
    await this.#catchUp(epoch)
  }

  async #catchUp(epoch: number, redirects = 0): Promise<void> {
    if (this.#closed || epoch !== this.#epoch) return
    try {
      const nowSeconds = Math.floor(this.#c.clock() / 1000)
      const flat = await this.#cmd.zrangebyscore(RECENT_REVOCATIONS_KEY, nowSeconds, '+inf', 'WITHSCORES')
      if (this.#closed || epoch !== this.#epoch) return
      let count = 0
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const exp = Number(flat[i + 1])
        const sid = flat[i]!
        if (sid.length === 0 || sid.length > 200 || !Number.isFinite(exp)) continue
        this.#c.onRevocation({ sid, exp })
        count++
      }
      this.#live = true
      this.#errorReported = false
      this.#c.logger.info({ caughtUp: count }, 'revocation feed subscribed')
      this.#c.onSynced(count)
    } catch (err) {
      const moved = /^MOVED \d+ (.+):(\d+)$/.exec((err as Error).message)
      if (moved !== null && redirects < MAX_REDIRECTS && !this.#closed && epoch === this.#epoch) {
        // Cluster: the recent set is on another node. Read it there (no warning: this is the topology).
        this.#useReader({ host: moved[1]!, port: Number(moved[2]) })
        this.#c.logger.debug({ node: `${moved[1]!}:${moved[2]!}` }, 'revocation feed: reading the recent set on the node that holds it')
        void this.#catchUp(epoch, redirects + 1)
        return
      }
      // A node we were redirected to may be gone (a failover): start again from the subscriber's node.
      if (this.#redirected && !this.#closed) this.#useReader(undefined)
      // Still subscribed, but not caught up: try again rather than leave a gap.
      this.#c.logger.warn({ err: (err as Error).message }, 'revocation feed: reading the recent set failed; retrying')
      this.#retry = setTimeout(() => void this.#catchUp(epoch), CATCH_UP_RETRY_MS)
      this.#retry.unref()
    }
  }
}

async function quit(client: Redis): Promise<void> {
  if (client.status === 'end') return
  if (client.status !== 'ready') {
    // A QUIT would wait in the offline queue for a connection that may never come.
    client.disconnect()
    return
  }
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}
