import type { StoredAuditEvent } from '../audit/event.js'
import { audit, type AuditQuery, type AuditTrail } from '../audit/trail.js'
import type { CliContext } from './context.js'
import { CliError, list, positiveInt, str, UsageError, type GroupSpec, type Values } from './framework.js'

const NOT_DURABLE =
  'DATABASE_URL is not set: without PostgreSQL the audit trail is kept in each service process\'s memory only ' +
  '(the embedded default), so there is nothing durable to search; the audit log lines (JSON with an `event` field) are the record'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `2026-01-31`, `2026-01-31T12:00:00Z`, or a duration ago: `90s`, `15m`, `24h`, `7d`, `2w`. */
export function parseWhen(text: string, now: number, option: string): number {
  const rel = /^(\d{1,6})([smhdw])$/.exec(text)
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]!]!
  const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : NaN
  if (Number.isNaN(ms)) throw new UsageError(`--${option} must be an ISO 8601 date or time (2026-01-31, 2026-01-31T12:00:00Z) or a duration ago (30m, 24h, 7d)`)
  return ms
}

async function durableTrail(ctx: CliContext): Promise<AuditTrail> {
  const config = await ctx.config()
  if (!config.database) throw new CliError(NOT_DURABLE, 1, 'config')
  return await ctx.trail.open()
}

async function queryOf(ctx: CliContext, v: Values): Promise<AuditQuery> {
  const now = ctx.clock()
  const q: AuditQuery = { limit: positiveInt(v, 'limit', 1000) ?? 50, events: list(v, 'event'), address: str(v, 'address'), cursor: str(v, 'cursor'), clientId: str(v, 'client') }
  const since = str(v, 'since')
  const until = str(v, 'until')
  if (since !== undefined) q.since = parseWhen(since, now, 'since')
  if (until !== undefined) q.until = parseWhen(until, now, 'until')
  const user = str(v, 'user')
  // The trail keeps user ids (`sub`): a username is looked up in the directory.
  if (user !== undefined) q.userId = /^u_/.test(user) ? user : (await (await ctx.admin()).findUser(user)).id
  return q
}

export function auditEventJson(e: StoredAuditEvent): Record<string, unknown> {
  return {
    id: e.id,
    time: new Date(e.time).toISOString(),
    event: e.event,
    outcome: e.outcome,
    actor: e.actorType === null ? null : { type: e.actorType, id: e.actorId },
    user_id: e.userId,
    client_id: e.clientId,
    address: e.address,
    session_id: e.sessionId,
    family_id: e.familyId,
    details: e.details,
  }
}

function line(e: StoredAuditEvent): string {
  const parts = [new Date(e.time).toISOString(), e.event, e.outcome]
  if (e.actorType !== null) parts.push(`actor=${e.actorType}:${e.actorId}`)
  for (const [k, val] of [['user', e.userId], ['client', e.clientId], ['address', e.address], ['session', e.sessionId], ['family', e.familyId]] as const) if (val !== null) parts.push(`${k}=${val}`)
  if (Object.keys(e.details).length > 0) parts.push(JSON.stringify(e.details))
  return parts.join('  ')
}

/** `gatehouse audit`: search the audit trail in PostgreSQL, and apply its retention. */
export function auditGroup(ctx: CliContext): GroupSpec {
  return {
    name: 'audit',
    summary: 'the audit trail in PostgreSQL (DATABASE_URL): search it, apply its retention',
    commands: [
      {
        name: 'search',
        summary: 'audit events, newest first, one page at a time (filters combine with AND)',
        details:
          'Kept: sign-ins (login.succeeded), failures (login.failed, client.auth_failed), lockouts (login.locked), reuse detections ' +
          '(refresh_token.reuse_detected, authorization_code.reused), revocations (family.revoked, session.ended, token.revocation, logout) ' +
          'and every admin action (admin.*), each with its actor, address and time. --since is inclusive, --until exclusive. ' +
          'Without DATABASE_URL there is nothing durable to search (the service keeps its events in memory only).',
        options: {
          user: { type: 'string', value: 'user', description: 'events about this user: a user id (u_...), or a username looked up in the directory' },
          client: { type: 'string', value: 'client_id', description: 'events of this client' },
          event: { type: 'string', multiple: true, value: 'name', description: 'this event (repeat for several); a name ending in * is a prefix, e.g. admin.*' },
          since: { type: 'string', value: 'when', description: 'from this time: ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z) or a duration ago (30m, 24h, 7d)' },
          until: { type: 'string', value: 'when', description: 'before this time (same forms as --since)' },
          address: { type: 'string', value: 'ip', description: 'events from this client address' },
          limit: { type: 'string', value: 'n', description: 'events per page, 1 to 1000 (default 50)' },
          cursor: { type: 'string', value: 'cursor', description: 'the next page: the cursor the previous page printed' },
        },
        examples: [
          'gatehouse audit search --user alice --since 24h',
          "gatehouse audit search --event login.failed --event login.locked --address 203.0.113.7 --json",
          "gatehouse audit search --event 'admin.*' --since 2026-01-01 --until 2026-02-01 --limit 100",
        ],
        async run(inv) {
          const trail = await durableTrail(ctx)
          const query = await queryOf(ctx, inv.values)
          let page
          try {
            page = await trail.search(query)
          } catch (err) {
            if (err instanceof RangeError) throw new UsageError(`invalid --cursor ${JSON.stringify(query.cursor)}`)
            throw new CliError(`cannot search the audit trail: ${(err as Error).message}`, 1, 'unavailable')
          }
          const more = page.cursor === null ? '' : `\n(more: --cursor ${page.cursor})`
          inv.print(page.events.length === 0 ? 'no audit events' : `${page.events.map(line).join('\n')}${more}`, { events: page.events.map(auditEventJson), next_cursor: page.cursor })
        },
      },
      {
        name: 'prune',
        summary: 'delete the audit events older than AUDIT_RETENTION_DAYS now (the service also does it hourly)',
        details: 'Deletes in batches, safe while services run and prune too. AUDIT_RETENTION_DAYS=0 keeps every event: then nothing is deleted.',
        destructive: true,
        examples: ['AUDIT_RETENTION_DAYS=30 gatehouse audit prune --yes', 'gatehouse audit prune --yes --json'],
        async run(inv) {
          const trail = await durableTrail(ctx)
          const days = (await ctx.config()).audit.retentionDays
          if (days === 0) return inv.print('AUDIT_RETENTION_DAYS=0: audit events are kept forever; nothing to delete', { deleted: 0, retention_days: 0 })
          const cutoff = new Date(ctx.clock() - days * 86_400_000).toISOString()
          await inv.confirm(`Delete every audit event older than ${days} days (before ${cutoff})?`)
          let deleted
          try {
            deleted = await trail.prune()
          } catch (err) {
            throw new CliError(`cannot prune the audit trail: ${(err as Error).message}`, 1, 'unavailable')
          }
          audit(ctx.audit, trail, { event: 'admin.audit_pruned', actor: ctx.actor, deleted, retention_days: days, before: cutoff }, 'audit trail pruned')
          inv.print(`deleted ${deleted} audit event(s) from before ${cutoff}`, { deleted, retention_days: days, before: cutoff })
        },
      },
    ],
  }
}
