import { createHash } from 'node:crypto'

/**
 * The back-channel logout queue: one job per (ended session, client), delivered by a worker
 * (worker.ts). A job holds identifiers only; the logout token is minted at each attempt, so no
 * token rests in the queue and a retry after the 2-minute lifetime still sends a live one.
 *
 * Claiming is at-least-once with a lease: a claimed job stays queued, due again when its lease
 * ends, so a replica that dies mid-delivery leaves it for another; only the holder of the
 * current lease may settle it. Attempts are counted when claimed, so even a job that crashes
 * its worker is given up after the last retry.
 */
export interface LogoutJobInput {
  clientId: string
  sid: string
  sub: string
}

export interface LogoutJob extends LogoutJobInput {
  /** Derived from (client, sid): the same session ended twice queues one job. */
  id: string
  /** Attempts started so far (the claim that returned the job included). */
  attempts: number
  /** ms since the epoch */
  createdAt: number
}

export interface ClaimedLogoutJob extends LogoutJob {
  /** The claim's lease: settling with an older one does nothing. */
  lease: string
}

export type EnqueueOutcome = 'queued' | 'exists' | 'full'

export interface LogoutQueue {
  /** Adds a job due at `dueAt` (ms); `exists` when one for the same (client, sid) is queued, `full` at the cap. */
  enqueue(job: LogoutJobInput, dueAt: number): Promise<EnqueueOutcome>
  /** Up to `limit` jobs due at `now`, each leased until `now + leaseMs` under `lease`, attempts + 1. */
  claim(now: number, limit: number, leaseMs: number, lease: string): Promise<ClaimedLogoutJob[]>
  /** Removes a delivered (or abandoned) job; false when the lease was lost to another claim. */
  complete(job: ClaimedLogoutJob): Promise<boolean>
  /** Makes the job due again at `dueAt`; false when the lease was lost. */
  reschedule(job: ClaimedLogoutJob, dueAt: number): Promise<boolean>
  /** Jobs queued (claimed ones included). */
  size(): Promise<number>
}

/** The cap on queued jobs (each is a few hundred bytes): beyond it new jobs are refused, not stored. */
export const DEFAULT_MAX_JOBS = 100_000

export function logoutJobId(clientId: string, sid: string): string {
  return createHash('sha256').update(`${clientId}\n${sid}`).digest('base64url').slice(0, 27)
}

interface Entry {
  job: LogoutJob
  lease: string
  due: number
}

/** The queue in this process (the embedded default): lost with the process, like every memory store. */
export class MemoryLogoutQueue implements LogoutQueue {
  readonly #jobs = new Map<string, Entry>()
  readonly #max: number
  readonly #clock: () => number

  constructor(options: { maxJobs?: number; clock?: () => number } = {}) {
    this.#max = options.maxJobs ?? DEFAULT_MAX_JOBS
    this.#clock = options.clock ?? Date.now
    if (!Number.isInteger(this.#max) || this.#max < 1) throw new TypeError('maxJobs must be a positive integer')
  }

  async enqueue(input: LogoutJobInput, dueAt: number): Promise<EnqueueOutcome> {
    const id = logoutJobId(input.clientId, input.sid)
    if (this.#jobs.has(id)) return 'exists'
    if (this.#jobs.size >= this.#max) return 'full'
    const job: LogoutJob = { id, clientId: input.clientId, sid: input.sid, sub: input.sub, attempts: 0, createdAt: this.#clock() }
    this.#jobs.set(id, { job, lease: '', due: dueAt })
    return 'queued'
  }

  async claim(now: number, limit: number, leaseMs: number, lease: string): Promise<ClaimedLogoutJob[]> {
    const due = [...this.#jobs.values()].filter((e) => e.due <= now).sort((a, b) => a.due - b.due || (a.job.id < b.job.id ? -1 : 1))
    return due.slice(0, limit).map((e) => {
      e.job = { ...e.job, attempts: e.job.attempts + 1 }
      e.lease = lease
      e.due = now + leaseMs
      return { ...e.job, lease }
    })
  }

  async complete(job: ClaimedLogoutJob): Promise<boolean> {
    const e = this.#jobs.get(job.id)
    if (e === undefined || e.lease !== job.lease) return false
    this.#jobs.delete(job.id)
    return true
  }

  async reschedule(job: ClaimedLogoutJob, dueAt: number): Promise<boolean> {
    const e = this.#jobs.get(job.id)
    if (e === undefined || e.lease !== job.lease) return false
    e.lease = ''
    e.due = dueAt
    return true
  }

  async size(): Promise<number> {
    return this.#jobs.size
  }
}
