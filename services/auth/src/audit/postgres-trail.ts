import type { Clock } from '../store/types.js'
import { toAuditEvent, type AuditEvent, type AuditFields, type StoredAuditEvent } from './event.js'
import { DAY_MS, decodeCursor, encodeCursor, eventFilter, type AuditPage, type AuditQuery, type AuditTrail } from './trail.js'

/** What the trail needs of a pg.Pool (tests wrap one to count statements). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>
}

export interface PostgresAuditTrailOptions {
  db: Queryable
  clock: Clock
  log: { warn(obj: Record<string, unknown>, msg?: string): void; info(obj: Record<string, unknown>, msg?: string): void }
  /** AUDIT_RETENTION_DAYS; 0 keeps every event. */
  retentionDays: number
  /** Events held while waiting to be written (AUDIT_BUFFER_SIZE); beyond it they are dropped. */
  bufferSize?: number
  /** Events per INSERT; a full batch is written at once, without waiting for the interval. */
  batchSize?: number
  flushIntervalMs?: number
  /** How often the retention runs (0 = never by itself; `prune()` still works). */
  pruneIntervalMs?: number
  /** Rows per DELETE, and DELETEs per run, of the retention. */
  pruneBatch?: number
  pruneMaxBatches?: number
  /** Counts written and dropped events (the gatehouse_audit_events_total counter). */
  count?: (outcome: 'written' | 'dropped', n: number) => void
  /** Runs `fn` every `ms` (unref'd setInterval by default; tests drive it by hand); returns a stop. */
  every?: (fn: () => void, ms: number) => () => void
  /** The longest close() waits for the last writes. */
  closeTimeoutMs?: number
  /** What closes the connections at close() (the pool's end), if the trail owns them. */
  end?: () => Promise<void>
}

const defaultEvery = (fn: () => void, ms: number): (() => void) => {
  const timer = setInterval(fn, ms)
  timer.unref()
  return () => clearInterval(timer)
}

/** The columns written, in this order, each from one array parameter (one statement per batch). */
const INSERT = `INSERT INTO audit_events (time, event, outcome, actor_type, actor_id, user_id, client_id, address, session_id, family_id, details)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[])`

/** A warning about dropped events at most this often (the counter has every one). */
const WARN_EVERY_MS = 60_000

/**
 * The audit trail in PostgreSQL (issue 13). `record` appends to a bounded buffer and returns;
 * the buffer is written as one multi-row INSERT per batch (`unnest` of one array per column),
 * every `flushIntervalMs` or as soon as a batch is full, one write at a time. Should PostgreSQL be
 * down or slow, the batch that failed is dropped and so is what no longer fits the buffer, each
 * counted (`count`, a throttled warning); writing resumes by itself when the database answers.
 * A request never waits for any of it. Retention is a periodic DELETE of old rows in bounded
 * batches that skip rows another replica is deleting, so several replicas can all run it.
 */
export class PostgresAuditTrail implements AuditTrail {
  readonly durable = true
  readonly stats = { written: 0, dropped: 0 }
  readonly #o: Required<Omit<PostgresAuditTrailOptions, 'count' | 'end'>> & Pick<PostgresAuditTrailOptions, 'count' | 'end'>
  #buffer: AuditEvent[] = []
  #writing: Promise<void> | null = null
  #failing = false
  #closed = false
  #unwarned = 0
  #lastWarn = -Infinity
  #lastReason = ''
  readonly #stops: (() => void)[] = []

  constructor(options: PostgresAuditTrailOptions) {
    this.#o = { bufferSize: 10_000, batchSize: 500, flushIntervalMs: 1000, pruneIntervalMs: 3_600_000, pruneBatch: 5000, pruneMaxBatches: 100, every: defaultEvery, closeTimeoutMs: 5000, ...options }
    this.#stops.push(this.#o.every(() => void this.#kick(), this.#o.flushIntervalMs))
    if (this.#o.pruneIntervalMs > 0 && this.#o.retentionDays > 0) {
      this.#stops.push(this.#o.every(() => void this.prune().catch((err: unknown) => this.#o.log.warn({ event: 'audit.prune_failed', err: (err as Error).message }, 'audit retention failed; retrying at the next interval')), this.#o.pruneIntervalMs))
    }
  }

  record(event: AuditFields): void {
    try {
      if (this.#closed) return this.#drop(1, 'closed')
      if (this.#buffer.length >= this.#o.bufferSize) return this.#drop(1, 'buffer_full')
      this.#buffer.push(toAuditEvent(event, this.#o.clock()))
      if (this.#buffer.length >= this.#o.batchSize) void this.#kick()
    } catch {
      this.#drop(1, 'invalid')
    }
  }

  /** How many events wait to be written. */
  get buffered(): number {
    return this.#buffer.length
  }

  async flush(): Promise<void> {
    // Until the buffer is empty, or a write fails (what is left waits for the next interval).
    do await this.#kick()
    while (this.#buffer.length > 0 && !this.#failing)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const stop of this.#stops) stop()
    let timer: NodeJS.Timeout | undefined
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#o.closeTimeoutMs)))
    try {
      await Promise.race([this.flush().catch(() => undefined), bound])
      if (this.#buffer.length > 0) this.#drop(this.#buffer.splice(0).length, 'closed')
      this.#warn(true)
      if (this.#o.end) await Promise.race([this.#o.end().catch(() => undefined), bound])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Starts writing unless a write is under way; resolves when that write ends. */
  #kick(): Promise<void> {
    this.#writing ??= this.#drain().finally(() => (this.#writing = null))
    return this.#writing
  }

  async #drain(): Promise<void> {
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#o.batchSize)
      try {
        await this.#o.db.query(INSERT, columns(batch))
      } catch (err) {
        if (!this.#failing) this.#o.log.warn({ event: 'audit.write_failed', err: (err as Error).message }, 'audit events could not be written to PostgreSQL: dropping them until it answers')
        this.#failing = true
        this.#drop(batch.length, 'unavailable')
        return
      }
      if (this.#failing) this.#o.log.info({ event: 'audit.write_resumed' }, 'audit events are written to PostgreSQL again')
      this.#failing = false
      this.stats.written += batch.length
      this.#o.count?.('written', batch.length)
    }
  }

  #drop(n: number, reason: string): void {
    this.stats.dropped += n
    this.#o.count?.('dropped', n)
    this.#unwarned += n
    this.#lastReason = reason
    this.#warn(false)
  }

  /** One warning line per WARN_EVERY_MS at most, with the count since the last one. */
  #warn(now: boolean): void {
    if (this.#unwarned === 0) return
    const t = this.#o.clock()
    if (!now && t - this.#lastWarn < WARN_EVERY_MS) return
    this.#o.log.warn({ event: 'audit.dropped', dropped: this.#unwarned, reason: this.#lastReason }, 'audit events dropped (gatehouse_audit_events_total{outcome="dropped"} counts every one)')
    this.#lastWarn = t
    this.#unwarned = 0
  }

  async prune(): Promise<number> {
    if (this.#o.retentionDays === 0) return 0
    const cutoff = new Date(this.#o.clock() - this.#o.retentionDays * DAY_MS)
    let deleted = 0
    for (let i = 0; i < this.#o.pruneMaxBatches; i++) {
      // SKIP LOCKED: replicas pruning at the same moment take different rows instead of waiting.
      const r = await this.#o.db.query(
        'DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE time < $1 ORDER BY time, id LIMIT $2 FOR UPDATE SKIP LOCKED)',
        [cutoff, this.#o.pruneBatch],
      )
      deleted += r.rowCount ?? 0
      if ((r.rowCount ?? 0) < this.#o.pruneBatch) break
    }
    return deleted
  }

  async search(q: AuditQuery): Promise<AuditPage> {
    const where: string[] = []
    const values: unknown[] = []
    const param = (v: unknown): string => `$${values.push(v)}`
    if (q.userId !== undefined) where.push(`user_id = ${param(q.userId)}`)
    if (q.clientId !== undefined) where.push(`client_id = ${param(q.clientId)}`)
    if (q.address !== undefined) where.push(`address = ${param(q.address)}`)
    if (q.since !== undefined) where.push(`time >= ${param(new Date(q.since))}`)
    if (q.until !== undefined) where.push(`time < ${param(new Date(q.until))}`)
    const { exact, prefixes } = eventFilter(q.events)
    const byEvent = [...(exact.length ? [`event = ANY(${param(exact)}::text[])`] : []), ...prefixes.map((p) => `starts_with(event, ${param(p)})`)]
    if (byEvent.length > 0) where.push(`(${byEvent.join(' OR ')})`)
    if (q.cursor !== undefined) {
      const c = decodeCursor(q.cursor)
      where.push(`(time, id) < (${param(new Date(c.time))}, ${param(String(c.id))}::bigint)`)
    }
    const sql = `SELECT id::text, (extract(epoch FROM time) * 1000)::float8 AS ms, event, outcome, actor_type, actor_id, user_id, client_id, address, session_id, family_id, details
FROM audit_events${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, id DESC LIMIT ${param(q.limit + 1)}`
    const { rows } = await this.#o.db.query(sql, values)
    const events = rows.slice(0, q.limit).map(fromRow)
    return { events, cursor: rows.length > q.limit ? encodeCursor(events[events.length - 1]!) : null }
  }
}

function columns(batch: readonly AuditEvent[]): unknown[][] {
  return [
    batch.map((e) => new Date(e.time)),
    batch.map((e) => e.event),
    batch.map((e) => e.outcome),
    batch.map((e) => e.actorType),
    batch.map((e) => e.actorId),
    batch.map((e) => e.userId),
    batch.map((e) => e.clientId),
    batch.map((e) => e.address),
    batch.map((e) => e.sessionId),
    batch.map((e) => e.familyId),
    batch.map((e) => JSON.stringify(e.details)),
  ]
}

function fromRow(r: Record<string, unknown>): StoredAuditEvent {
  return {
    id: r.id as string,
    time: Math.round(r.ms as number),
    event: r.event as StoredAuditEvent['event'],
    outcome: r.outcome as StoredAuditEvent['outcome'],
    actorType: r.actor_type as StoredAuditEvent['actorType'],
    actorId: r.actor_id as string | null,
    userId: r.user_id as string | null,
    clientId: r.client_id as string | null,
    address: r.address as string | null,
    sessionId: r.session_id as string | null,
    familyId: r.family_id as string | null,
    details: r.details as Record<string, unknown>,
  }
}
