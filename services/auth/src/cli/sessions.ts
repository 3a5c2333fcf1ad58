import type { Family } from '../store/types.js'
import type { CliContext } from './context.js'
import { str, UsageError, type CommandSpec, type GroupSpec } from './framework.js'

const iso = (ms: number): string => new Date(ms).toISOString()

/** A session is a refresh-token family (DESIGN §5); its id is the `sid` of its access tokens. */
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

function familyLine(f: Family): string {
  return `${f.id}  client=${f.clientId}  created=${iso(f.createdAt)}  last_used=${iso(f.lastUsedAt)}  scope="${f.scope}"`
}

export function sessionsGroup(ctx: CliContext): GroupSpec {
  const commands: CommandSpec[] = [
    {
      name: 'list',
      summary: "list a user's live sessions (refresh-token families)",
      options: { user: { type: 'string', value: 'user', description: 'a username or user id (required)' } },
      examples: ['gatehouse sessions list --user alice', 'gatehouse sessions list --user alice --json'],
      async run(inv) {
        const ref = str(inv.values, 'user')
        if (ref === undefined) throw new UsageError('--user <user> is required')
        const admin = await ctx.admin()
        const { user, families } = await admin.listSessions(ref)
        inv.print(families.length === 0 ? `${user.username} has no live sessions` : families.map(familyLine).join('\n'), {
          user_id: user.id,
          username: user.username,
          sessions: families.map(familyJson),
        })
      },
    },
    {
      name: 'revoke',
      summary: "revoke every session of a user, or one family; resource servers drop their access tokens",
      options: {
        user: { type: 'string', value: 'user', description: 'revoke every session of this user (username or id)' },
        family: { type: 'string', value: 'id', description: 'revoke this one family (the `sid` of its tokens)' },
      },
      destructive: true,
      examples: ['gatehouse sessions revoke --user alice --yes', 'gatehouse sessions revoke --family 5Zy0...w --yes'],
      async run(inv) {
        const ref = str(inv.values, 'user')
        const family = str(inv.values, 'family')
        if ((ref === undefined) === (family === undefined)) throw new UsageError('give exactly one of --user, --family')
        const admin = await ctx.admin()
        if (ref !== undefined) {
          const user = await admin.findUser(ref)
          await inv.confirm(`Revoke every session of ${user.username}?`)
          const { revoked } = await admin.revokeUserSessions(user.id)
          inv.print(`revoked ${revoked.length} session(s) of ${user.username}`, { user_id: user.id, revoked_families: revoked.map((f) => f.id) })
          return
        }
        await inv.confirm(`Revoke family ${family}?`)
        const f = await admin.revokeFamily(family!)
        inv.print(`revoked family ${f.id} (user ${f.userId}, client ${f.clientId})`, { revoked_families: [f.id] })
      },
    },
  ]
  return { name: 'sessions', summary: "sessions (refresh-token families): list a user's, revoke", commands }
}
