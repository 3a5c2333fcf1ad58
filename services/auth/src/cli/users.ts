import type { Family } from '../families/types.js'
import type { LoginSession } from '../signin/sessions.js'
import type { User } from '../directory/users.js'
import type { CliContext } from './context.js'
import { list, PASSWORD_OPTIONS, positiveInt, readPassword, str, UsageError, type CommandSpec, type GroupSpec, type Invocation } from './framework.js'

/** A user as the CLI shows it: never the password hash. */
export function userJson(u: User): Record<string, unknown> {
  return { id: u.id, username: u.username, roles: u.roles, claims: u.claims, disabled: u.disabled }
}

function userLine(u: User): string {
  return `${u.username}  ${u.id}  roles=${u.roles.join(',') || '-'}${u.disabled ? '  DISABLED' : ''}`
}

const USER_ARG = { name: 'user', description: 'a username (case-insensitive) or a user id (u_...)' }

const revokedNote = (sessions: readonly LoginSession[], revoked: readonly Family[]): string =>
  sessions.length === 0 && revoked.length === 0 ? 'no sessions to revoke' : `${sessions.length} login session(s) ended, ${revoked.length} token famil${revoked.length === 1 ? 'y' : 'ies'} revoked`

/** `--limit`/`--cursor` give one page; without them every page is printed. */
export async function paged<T>(
  inv: Invocation,
  fetch: (page: { cursor?: string | undefined; limit?: number | undefined }) => Promise<{ items: T[]; cursor: string | null }>,
  line: (item: T) => string,
  json: (item: T) => unknown,
  key: string,
): Promise<void> {
  const limit = positiveInt(inv.values, 'limit', 1000)
  const cursor = str(inv.values, 'cursor')
  if (limit !== undefined || cursor !== undefined) {
    const page = await fetch({ cursor, limit })
    const more = page.cursor === null ? '' : `\n(more: --cursor ${page.cursor})`
    inv.print(`${page.items.map(line).join('\n')}${more}`, { [key]: page.items.map(json), next_cursor: page.cursor })
    return
  }
  const all: T[] = []
  let next: string | undefined
  for (;;) {
    const page = await fetch({ cursor: next, limit: 500 })
    all.push(...page.items)
    if (page.cursor === null) break
    next = page.cursor
  }
  inv.print(all.length === 0 ? `no ${key}` : all.map(line).join('\n'), { [key]: all.map(json), next_cursor: null })
}

export const PAGE_OPTIONS = {
  limit: { type: 'string' as const, value: 'n', description: 'print one page of about n entries (with the cursor of the next)' },
  cursor: { type: 'string' as const, value: 'cursor', description: 'continue from a previous page' },
}

function claimsOf(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new UsageError('--claims must be a JSON object, e.g. \'{"name":"Alice","email":"alice@example.com"}\'')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError('--claims must be a JSON object')
  return v as Record<string, unknown>
}

export function usersGroup(ctx: CliContext): GroupSpec {
  const commands: CommandSpec[] = [
    {
      name: 'add',
      summary: 'add a user (usernames are unique, case-insensitively)',
      args: [{ name: 'username', description: 'the login name' }],
      options: {
        ...PASSWORD_OPTIONS,
        role: { type: 'string', multiple: true, value: 'role', description: 'a role (repeat for several)' },
        claims: { type: 'string', value: 'json', description: 'profile claims, a JSON object (name, email, ...)' },
        disabled: { type: 'boolean', description: 'add it disabled' },
      },
      details: 'Without --password-stdin or --password-file, the password is asked for on the terminal (not echoed).',
      examples: [
        "printf '%s' \"$PASSWORD\" | gatehouse users add alice --password-stdin --role admin --claims '{\"name\":\"Alice\"}'",
        'gatehouse users add bob --password-file /run/secrets/bob',
      ],
      async run(inv) {
        const admin = await ctx.admin()
        const claims = claimsOf(str(inv.values, 'claims'))
        const password = await readPassword(ctx.io, inv.values)
        const user = await admin.addUser({ username: inv.args[0]!, password, roles: list(inv.values, 'role'), ...(claims ? { claims } : {}), disabled: inv.values.disabled === true })
        inv.print(`added ${userLine(user)}`, { user: userJson(user) })
      },
    },
    {
      name: 'list',
      summary: 'list users',
      options: PAGE_OPTIONS,
      examples: ['gatehouse users list', 'gatehouse users list --limit 100 --json'],
      async run(inv) {
        const admin = await ctx.admin()
        await paged(inv, async (p) => {
          const page = await admin.listUsers(p)
          return { items: page.users, cursor: page.cursor }
        }, userLine, userJson, 'users')
      },
    },
    {
      name: 'show',
      summary: "show a user and the number of its live sessions",
      args: [USER_ARG],
      examples: ['gatehouse users show alice --json'],
      async run(inv) {
        const admin = await ctx.admin()
        const { user, families } = await admin.listSessions(inv.args[0]!)
        const claims = Object.keys(user.claims).length ? `\nclaims: ${JSON.stringify(user.claims)}` : ''
        inv.print(`${userLine(user)}${claims}\nsessions: ${families.length}`, { user: userJson(user), sessions: families.length })
      },
    },
    {
      name: 'disable',
      summary: 'disable a user: no more logins or refreshes; its login sessions end and its tokens are revoked',
      args: [USER_ARG],
      examples: ['gatehouse users disable alice'],
      async run(inv) {
        const admin = await ctx.admin()
        const { user, sessions, revoked } = await admin.disableUser(inv.args[0]!)
        inv.print(`disabled ${user.username}; ${revokedNote(sessions, revoked)}`, { user: userJson(user), ended_sessions: sessions.map((x) => x.id), revoked_families: revoked.map((f) => f.id) })
      },
    },
    {
      name: 'enable',
      summary: 'enable a disabled user',
      args: [USER_ARG],
      examples: ['gatehouse users enable alice'],
      async run(inv) {
        const admin = await ctx.admin()
        const user = await admin.enableUser(inv.args[0]!)
        inv.print(`enabled ${user.username}`, { user: userJson(user) })
      },
    },
    {
      name: 'set-password',
      summary: "set a user's password; its login sessions end and its tokens are revoked",
      args: [USER_ARG],
      options: PASSWORD_OPTIONS,
      details: 'Without --password-stdin or --password-file, the password is asked for on the terminal (not echoed).',
      examples: ["printf '%s' \"$NEW_PASSWORD\" | gatehouse users set-password alice --password-stdin"],
      async run(inv) {
        const admin = await ctx.admin()
        const password = await readPassword(ctx.io, inv.values)
        const { user, sessions, revoked } = await admin.setPassword(inv.args[0]!, password)
        inv.print(`password of ${user.username} changed; ${revokedNote(sessions, revoked)}`, { user: userJson(user), ended_sessions: sessions.map((x) => x.id), revoked_families: revoked.map((f) => f.id) })
      },
    },
    {
      name: 'set-roles',
      summary: "replace a user's roles (tokens issued from now on carry them)",
      args: [USER_ARG],
      options: {
        role: { type: 'string', multiple: true, value: 'role', description: 'a role (repeat for several)' },
        none: { type: 'boolean', description: 'remove every role' },
      },
      examples: ['gatehouse users set-roles alice --role admin --role auditor', 'gatehouse users set-roles bob --none'],
      async run(inv) {
        const roles = list(inv.values, 'role')
        if (roles.length === 0 && inv.values.none !== true) throw new UsageError('give --role (repeatable) or --none')
        if (roles.length > 0 && inv.values.none === true) throw new UsageError('use --role or --none, not both')
        const admin = await ctx.admin()
        const user = await admin.setRoles(inv.args[0]!, roles)
        inv.print(`roles of ${user.username}: ${user.roles.join(', ') || '(none)'}`, { user: userJson(user) })
      },
    },
    {
      name: 'delete',
      summary: 'delete a user; its login sessions end and its tokens are revoked',
      args: [USER_ARG],
      destructive: true,
      examples: ['gatehouse users delete alice --yes'],
      async run(inv) {
        const admin = await ctx.admin()
        const target = await admin.findUser(inv.args[0]!)
        await inv.confirm(`Delete user ${target.username} (${target.id})?`)
        const { user, sessions, revoked } = await admin.deleteUser(target.id)
        inv.print(`deleted ${user.username}; ${revokedNote(sessions, revoked)}`, { user: userJson(user), ended_sessions: sessions.map((x) => x.id), revoked_families: revoked.map((f) => f.id) })
      },
    },
  ]
  return { name: 'users', summary: 'users: add, list, show, disable, enable, set-password, set-roles, delete', commands }
}
