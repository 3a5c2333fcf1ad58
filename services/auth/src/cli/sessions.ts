import type { LoginSession } from '../signin/sessions.js'
import type { Family } from '../families/types.js'
import type { CliContext } from './context.js'
import { str, UsageError, type CommandSpec, type GroupSpec } from './framework.js'

const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * A user's sessions are of two kinds (DESIGN §10.1): login sessions (a browser signed in at
 * /login; its id is the ID tokens' `sid`) and refresh-token families (what one client holds; its
 * id is the `sid` of its access tokens). Ending a login session revokes the families started
 * from it.
 */
export function loginSessionJson(s: LoginSession): Record<string, unknown> {
  return {
    session_id: s.id,
    user_id: s.userId,
    device: s.userAgent ?? null,
    address: s.address ?? null,
    created_at: iso(s.createdAt),
    last_used_at: iso(s.lastUsedAt),
    expires_at: iso(s.expiresAt),
    auth_time: iso(s.authTime * 1000),
    clients: s.clientIds,
  }
}

export function familyJson(f: Family): Record<string, unknown> {
  return {
    family_id: f.id,
    user_id: f.userId,
    client_id: f.clientId,
    scope: f.scope,
    session_id: f.sessionId ?? null,
    created_at: iso(f.createdAt),
    last_used_at: iso(f.lastUsedAt),
    expires_at: iso(f.expiresAt),
    generation: f.generation,
  }
}

/** The User-Agent is the operator's only hint at the device; bounded and quoted. */
function loginSessionLine(s: LoginSession): string {
  return `session ${s.id}  device=${JSON.stringify(s.userAgent ?? 'unknown')}  address=${s.address ?? 'unknown'}  created=${iso(s.createdAt)}  last_used=${iso(s.lastUsedAt)}  clients=${s.clientIds.join(',') || '-'}`
}

function familyLine(f: Family): string {
  return `family  ${f.id}  client=${f.clientId}  session=${f.sessionId ?? '-'}  created=${iso(f.createdAt)}  last_used=${iso(f.lastUsedAt)}  scope="${f.scope}"`
}

export function sessionsGroup(ctx: CliContext): GroupSpec {
  const commands: CommandSpec[] = [
    {
      name: 'list',
      summary: "list a user's live login sessions (device, address, created, last use) and token families",
      options: { user: { type: 'string', value: 'user', description: 'a username or user id (required)' } },
      examples: ['gatehouse sessions list --user alice', 'gatehouse sessions list --user alice --json'],
      async run(inv) {
        const ref = str(inv.values, 'user')
        if (ref === undefined) throw new UsageError('--user <user> is required')
        const admin = await ctx.admin()
        const { user, sessions, families } = await admin.listSessions(ref)
        const lines = [...sessions.map(loginSessionLine), ...families.map(familyLine)]
        inv.print(lines.length === 0 ? `${user.username} has no live sessions` : lines.join('\n'), {
          user_id: user.id,
          username: user.username,
          login_sessions: sessions.map(loginSessionJson),
          sessions: families.map(familyJson),
        })
      },
    },
    {
      name: 'revoke',
      summary: 'end every session of a user (sign out everywhere), one login session, or one family; resource servers drop their access tokens',
      options: {
        user: { type: 'string', value: 'user', description: 'end every login session and family of this user (username or id)' },
        session: { type: 'string', value: 'id', description: 'end this login session (a browser) and the families started from it' },
        family: { type: 'string', value: 'id', description: 'revoke this one family (the `sid` of its access tokens)' },
      },
      destructive: true,
      examples: ['gatehouse sessions revoke --user alice --yes', 'gatehouse sessions revoke --session 3q2x...Q --yes', 'gatehouse sessions revoke --family 5Zy0...w --yes'],
      async run(inv) {
        const ref = str(inv.values, 'user')
        const session = str(inv.values, 'session')
        const family = str(inv.values, 'family')
        if ([ref, session, family].filter((v) => v !== undefined).length !== 1) throw new UsageError('give exactly one of --user, --session, --family')
        const admin = await ctx.admin()
        if (ref !== undefined) {
          const user = await admin.findUser(ref)
          await inv.confirm(`End every session of ${user.username}?`)
          const { sessions, revoked } = await admin.revokeUserSessions(user.id)
          inv.print(`ended ${sessions.length} login session(s) and revoked ${revoked.length} token family(ies) of ${user.username}`, {
            user_id: user.id,
            ended_sessions: sessions.map((s) => s.id),
            revoked_families: revoked.map((f) => f.id),
          })
          return
        }
        if (session !== undefined) {
          await inv.confirm(`End login session ${session}?`)
          const { session: s, revoked } = await admin.revokeSession(session)
          inv.print(`ended login session ${s.id} (user ${s.userId}); revoked ${revoked.length} token family(ies)`, { ended_sessions: [s.id], revoked_families: revoked.map((f) => f.id) })
          return
        }
        await inv.confirm(`Revoke family ${family}?`)
        const f = await admin.revokeFamily(family!)
        inv.print(`revoked family ${f.id} (user ${f.userId}, client ${f.clientId})`, { revoked_families: [f.id] })
      },
    },
  ]
  return { name: 'sessions', summary: "a user's login sessions and token families: list, revoke", commands }
}
