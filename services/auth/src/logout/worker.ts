import { randomBytes } from 'node:crypto'
import type { ClientDirectory } from '../directory/clients.js'
import type { KeyRing } from '../keys/signing-keys.js'
import type { AuthMetrics } from '../runtime/metrics.js'
import { postLogoutToken, REAL_TIMERS, type DeliveryOptions, type DeliveryResult, type Timers } from './delivery.js'
import { signLogoutToken } from './logout-token.js'
import type { ClaimedLogoutJob, LogoutQueue } from './queue.js'

export interface WorkerLog {
  info(obj: Record<string, unknown>, msg?: string): void
  warn(obj: Record<string, unknown>, msg?: string): void
}

export type Deliver = (uri: string, logoutToken: string, options: DeliveryOptions) => Promise<DeliveryResult>

export interface BackchannelWorkerOptions {
  queue: LogoutQueue
  clients: Pick<ClientDirectory, 'get'>
  keys: KeyRing
  issuer: string
  /** ms since the epoch: due times, leases, the logout tokens' iat */
  clock: () => number
  log: WorkerLog
  metrics?: AuthMetrics
  /** ms per attempt (BACKCHANNEL_LOGOUT_TIMEOUT) */
  timeoutMs: number
  /** Retries after the first attempt (BACKCHANNEL_LOGOUT_RETRIES). */
  retries: number
  /** ms before the first retry; each next one waits twice as long (default 10 s). */
  backoffMs?: number
  /** ms: the longest wait between attempts (default 1 h). */
  maxBackoffMs?: number
  /** ms between polls of the queue (default 1 s). */
  pollIntervalMs?: number
  /** Jobs claimed per tick (default 16), delivered concurrently. */
  batch?: number
  /** Timers of the poll loop and of each attempt's timeout. */
  timers?: Timers
  /** The HTTP POST (default postLogoutToken). */
  deliver?: Deliver
}

/**
 * Delivers queued logout tokens (OIDC Back-Channel Logout 1.0 §2.5, DESIGN §10.1). Each tick
 * claims the due jobs, mints a fresh logout token per attempt, POSTs it, and then removes the job
 * (delivered), makes it due again after an exponential backoff (retry), or removes it after the
 * last retry (failed). Every replica runs one; the queue's leases keep two from sending the same
 * job at once, and a job claimed by a replica that died is due again when its lease ends.
 */
export class BackchannelWorker {
  readonly #o: Required<Omit<BackchannelWorkerOptions, 'metrics'>> & { metrics: AuthMetrics | undefined }
  readonly #leaseMs: number
  #timer: unknown
  #running: Promise<void> = Promise.resolve()
  #stopped = true
  #abort = new AbortController()
  /** The queue failed at the last poll: said once, not every second, until it answers again. */
  #queueDown = false

  constructor(options: BackchannelWorkerOptions) {
    const o = {
      backoffMs: 10_000,
      maxBackoffMs: 60 * 60 * 1000,
      pollIntervalMs: 1000,
      batch: 16,
      timers: REAL_TIMERS,
      deliver: postLogoutToken,
      ...options,
      metrics: options.metrics,
    }
    const problems: string[] = []
    for (const name of ['timeoutMs', 'backoffMs', 'maxBackoffMs', 'pollIntervalMs', 'batch'] as const) {
      if (!Number.isInteger(o[name]) || o[name] < 1) problems.push(`${name} must be a positive integer`)
    }
    if (!Number.isInteger(o.retries) || o.retries < 0) problems.push('retries must be a non-negative integer')
    if (problems.length > 0) throw new TypeError(`invalid back-channel logout worker options: ${problems.join('; ')}`)
    this.#o = o
    // A claim outlives the attempt it covers (timeout, signing, settling) by a wide margin, so a
    // slow but live replica keeps its job; a dead one's job is due again after this.
    this.#leaseMs = o.timeoutMs + 30_000
  }

  /** The wait before retry `n` (1-based): backoffMs · 2^(n-1), at most maxBackoffMs. */
  backoff(n: number): number {
    return Math.min(this.#o.backoffMs * 2 ** Math.min(n - 1, 30), this.#o.maxBackoffMs)
  }

  /** Polls the queue until stop(). */
  start(): void {
    if (!this.#stopped) return
    this.#stopped = false
    this.#abort = new AbortController()
    this.#schedule(this.#o.pollIntervalMs)
  }

  /** Stops polling, aborts attempts in flight (their jobs are due again when the lease ends) and waits for the tick. */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#abort.abort()
    await this.#running
  }

  #schedule(ms: number): void {
    if (this.#stopped) return
    const handle = this.#o.timers.setTimeout(() => {
      this.#timer = undefined
      this.#running = this.tick().then(
        (n) => this.#schedule(n >= this.#o.batch ? 0 : this.#o.pollIntervalMs),
        () => this.#schedule(this.#o.pollIntervalMs),
      )
    }, ms)
    // A poll never keeps the process alive by itself.
    ;(handle as { unref?: () => void } | null)?.unref?.()
    this.#timer = handle
  }

  /** One pass: claims the due jobs and settles each. Returns how many were claimed. */
  async tick(): Promise<number> {
    const lease = randomBytes(12).toString('base64url')
    let jobs: ClaimedLogoutJob[]
    try {
      jobs = await this.#o.queue.claim(this.#o.clock(), this.#o.batch, this.#leaseMs, lease)
    } catch (err) {
      if (!this.#queueDown) this.#o.log.warn({ event: 'backchannel_logout.queue_unavailable', err: (err as Error).message }, 'back-channel logout queue unavailable')
      this.#queueDown = true
      return 0
    }
    if (this.#queueDown) this.#o.log.info({ event: 'backchannel_logout.queue_available' }, 'back-channel logout queue available again')
    this.#queueDown = false
    await Promise.all(jobs.map((job) => this.#attempt(job)))
    return jobs.length
  }

  async #attempt(job: ClaimedLogoutJob): Promise<void> {
    const o = this.#o
    const fields = { client_id: job.clientId, sid: job.sid, sub: job.sub, attempts: job.attempts }
    try {
      if (job.attempts > o.retries + 1) {
        // Its last attempt was claimed by a replica that died before settling it.
        await o.queue.complete(job)
        o.metrics?.backchannelLogout.inc({ outcome: 'failed' })
        o.log.warn({ event: 'backchannel_logout.failed', ...fields, attempts: job.attempts - 1, reason: 'abandoned' }, 'back-channel logout failed after the last retry')
        return
      }
      const client = await o.clients.get(job.clientId)
      const uri = client?.backchannelLogoutUri
      if (uri === undefined) {
        // Deleted, or its back-channel logout URI removed, since the session ended.
        await o.queue.complete(job)
        o.metrics?.backchannelLogout.inc({ outcome: 'dropped' })
        o.log.info({ event: 'backchannel_logout.dropped', ...fields, reason: 'client_not_registered' }, 'back-channel logout dropped')
        return
      }
      // Minted per attempt: a retry minutes later still carries an unexpired token (exp ≤ 2 min).
      const token = await signLogoutToken({ issuer: o.issuer, keys: o.keys, clock: o.clock }, job)
      const result = await o.deliver(uri, token, { timeoutMs: o.timeoutMs, timers: o.timers, signal: this.#abort.signal })
      if (result.ok) {
        await o.queue.complete(job)
        o.metrics?.backchannelLogout.inc({ outcome: 'delivered' })
        o.log.info({ event: 'backchannel_logout.delivered', ...fields, status: result.status }, 'back-channel logout delivered')
        return
      }
      // Stopping: the job stays leased and is due again when the lease ends (another replica).
      if (result.reason === 'aborted') return
      const failure = { reason: result.reason, ...(result.reason === 'status' ? { status: result.status } : {}) }
      if (job.attempts > o.retries) {
        await o.queue.complete(job)
        o.metrics?.backchannelLogout.inc({ outcome: 'failed' })
        o.log.warn({ event: 'backchannel_logout.failed', ...fields, ...failure }, 'back-channel logout failed after the last retry')
        return
      }
      const wait = this.backoff(job.attempts)
      await o.queue.reschedule(job, o.clock() + wait)
      o.metrics?.backchannelLogout.inc({ outcome: 'retry' })
      o.log.info({ event: 'backchannel_logout.retry', ...fields, ...failure, retry_in_ms: wait }, 'back-channel logout will be retried')
    } catch (err) {
      // The queue or the directory is down: the lease ends and the job is claimed again.
      o.log.warn({ event: 'backchannel_logout.error', ...fields, err: (err as Error).message }, 'back-channel logout attempt could not be settled')
    }
  }
}
