import type { Clock } from '../store/types.js'
import { toAuditEvent, type AuditFields, type StoredAuditEvent } from './event.js'

/**
 * The audit trail (issue 13): every audited event, kept and searchable. Recording is
 * fire-and-forget: `record` returns at once, never throws and never waits for a database, so
 * writing the trail can neither slow nor fail a request (the PostgreSQL trail buffers, batches
 * and drops what it cannot keep, counting it). Two implementations: PostgreSQL
 * (postgres-trail.ts, durable) and this module's memory ring (the embedded default).
 */
export interface AuditTrail {
  /** True when events outlive the process (PostgreSQL). */
  readonly durable: boolean
  /** Takes the fields of an audit log line; returns at once. */
  record(event: AuditFields): void
  /** Newest first, keyset-paged. */
  search(query: AuditQuery): Promise<AuditPage>
  /** Deletes what is older than the retention now; the number deleted. */
  prune(): Promise<number>
  /** Writes what is buffered (resolves once written or dropped). */
  flush(): Promise<void>
  /** Flushes within a bound and stops; events recorded afterwards are dropped. */
  close(): Promise<void>
  /** Events written and dropped by this process. */
  readonly stats: { written: number; dropped: number }
}

export interface AuditQuery {
  userId?: string | undefined
  clientId?: string | undefined
  /** Event names; one ending in `*` is a prefix (`admin.*`). */
  events?: readonly string[] | undefined
  address?: string | undefined
  /** ms since the epoch, inclusive */
  since?: number | undefined
  /** ms since the epoch, exclusive */
  until?: number | undefined
  limit: number
  /** The `cursor` of the previous page. */
  cursor?: string | undefined
}

export interface AuditPage {
  events: StoredAuditEvent[]
  /** null on the last page */
  cursor: string | null
}

/** A log line and, for audited events, its record in the trail: one call, so both say the same. */
export interface AuditLogger {
  info(obj: Record<string, unknown>, msg?: string): void
  warn?(obj: Record<string, unknown>, msg?: string): void
}

/** Writes an audit event to the log (as before) and records it in the trail. */
export function audit(log: AuditLogger, trail: AuditTrail, fields: AuditFields, msg: string, level: 'info' | 'warn' = 'info'): void {
  if (level === 'warn' && log.warn) log.warn(fields, msg)
  else log.info(fields, msg)
  trail.record(fields)
}

/** The keyset position after an event: its time and id. */
export function encodeCursor(e: { time: number; id: string }): string {
  return Buffer.from(`${e.time}:${e.id}`).toString('base64url')
}

/** RangeError on anything that is not a cursor this module made. */
export function decodeCursor(cursor: string): { time: number; id: bigint } {
  const m = /^(\d{1,16}):(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!m) throw new RangeError('invalid cursor')
  return { time: Number(m[1]), id: BigInt(m[2]!) }
}

/** Splits `events` into exact names and prefixes (`admin.*` → `admin.`). */
export function eventFilter(events: readonly string[] | undefined): { exact: string[]; prefixes: string[] } {
  const exact: string[] = []
  const prefixes: string[] = []
  for (const e of events ?? []) (e.endsWith('*') ? prefixes : exact).push(e.endsWith('*') ? e.slice(0, -1) : e)
  return { exact, prefixes }
}

export const DAY_MS = 86_400_000

/**
 * The embedded default (no DATABASE_URL): the newest `capacity` events in this process's memory,
 * searchable while it runs, gone when it stops. Nothing durable: `gatehouse audit` says so.
 */
export class MemoryAuditTrail implements AuditTrail {
  readonly durable = false
  readonly stats = { written: 0, dropped: 0 }
  readonly #ring: StoredAuditEvent[] = []
  #next = 0n
  #closed = false

  constructor(private readonly o: { clock: Clock; retentionDays: number; capacity?: number; count?: (outcome: 'written' | 'dropped', n: number) => void }) {}

  record(event: AuditFields): void {
    try {
      if (this.#closed) throw new Error('closed')
      this.#ring.push({ ...toAuditEvent(event, this.o.clock()), id: String(++this.#next) })
      if (this.#ring.length > (this.o.capacity ?? 10_000)) this.#ring.shift()
      this.stats.written++
      this.o.count?.('written', 1)
    } catch {
      this.stats.dropped++
      this.o.count?.('dropped', 1)
    }
  }

  async search(q: AuditQuery): Promise<AuditPage> {
    await this.prune()
    const after = q.cursor === undefined ? null : decodeCursor(q.cursor)
    const { exact, prefixes } = eventFilter(q.events)
    const hits: StoredAuditEvent[] = []
    for (let i = this.#ring.length - 1; i >= 0 && hits.length <= q.limit; i--) {
      const e = this.#ring[i]!
      if (after && (e.time > after.time || (e.time === after.time && BigInt(e.id) >= after.id))) continue
      if (q.userId !== undefined && e.userId !== q.userId) continue
      if (q.clientId !== undefined && e.clientId !== q.clientId) continue
      if (q.address !== undefined && e.address !== q.address) continue
      if (q.since !== undefined && e.time < q.since) continue
      if (q.until !== undefined && e.time >= q.until) continue
      if ((exact.length > 0 || prefixes.length > 0) && !exact.includes(e.event) && !prefixes.some((p) => e.event.startsWith(p))) continue
      hits.push(e)
    }
    // Recorded in clock order, so the ring is sorted by (time, id) already.
    const page = hits.slice(0, q.limit)
    return { events: page, cursor: hits.length > q.limit ? encodeCursor(page[page.length - 1]!) : null }
  }

  async prune(): Promise<number> {
    if (this.o.retentionDays === 0) return 0
    const cutoff = this.o.clock() - this.o.retentionDays * DAY_MS
    const keep = this.#ring.findIndex((e) => e.time >= cutoff)
    const removed = keep < 0 ? this.#ring.length : keep
    this.#ring.splice(0, removed)
    return removed
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.#closed = true
  }
}
