// A little over 300 lines: the `users` group is one list of command specs (their --help is made
// from it); the factor commands belong with the other verbs on a user.
import type { Family } from '../families/types.js'
import type { Factor } from '../mfa/factors.js'
import type { LoginSession } from '../signin/sessions.js'
import type { ListQuery, User } from '../directory/users.js'
import type { CliContext } from './context.js'
import { CliError, EXIT_FAILURE, list, PASSWORD_OPTIONS, positiveInt, readPassword, str, UsageError, type CommandSpec, type GroupSpec, type Invocation } from './framework.js'
import { exportUsers, importUsers } from './user-transfer.js'

/** A user as the CLI shows it: never the password hash. */
export function userJson(u: User): Record<string, unknown> {
  return { id: u.id, username: u.username, email: u.email ?? null, roles: u.roles, claims: u.claims, disabled: u.disabled }
}

function userLine(u: User): string {
  return `${u.username}  ${u.id}${u.email !== undefined ? `  <${u.email}>` : ''}  roles=${u.roles.join(',') || '-'}${u.disabled ? '  DISABLED' : ''}`
}

const iso = (ms: number): string => new Date(ms).toISOString()

/** A second factor as the CLI shows it: never its secret, public key, counter or code digests. */
export function factorJson(f: Factor): Record<string, unknown> {
  return {
    id: f.id,
    kind: f.kind,
    label: f.label,
    created_at: iso(f.createdAt),
    last_used_at: f.lastUsedAt === undefined ? null : iso(f.lastUsedAt),
    ...(f.kind === 'recovery' ? { codes_left: f.codeHashes.length, codes_total: f.total } : {}),
  }
}

/** The label is the user's text: quoted (JSON), so no control character reaches the terminal. */
function factorLine(f: Factor): string {
  const left = f.kind === 'recovery' ? `  left=${f.codeHashes.length}/${f.total}` : ''
  return `${f.id}  ${f.kind.padEnd(8)}  ${JSON.stringify(f.label)}  created=${iso(f.createdAt)}  last_used=${f.lastUsedAt === undefined ? 'never' : iso(f.lastUsedAt)}${left}`
}

const USER_ARG = { name: 'user', description: 'a username (case-insensitive), an email, or a user id (u_...)' }

const revokedNote = (sessions: readonly LoginSession[], revoked: readonly Family[]): string =>
  sessions.length === 0 && revoked.length === 0 ? 'no sessions to revoke' : `${sessions.length} login session(s) ended, ${revoked.length} token famil${revoked.length === 1 ? 'y' : 'ies'} revoked`

/** `--limit`/`--cursor` give one page; without them every page is printed. `--search` filters. */
export async function paged<T>(
  inv: Invocation,
  fetch: (page: ListQuery) => Promise<{ items: T[]; cursor: string | null }>,
  line: (item: T) => string,
  json: (item: T) => unknown,
  key: string,
): Promise<void> {
  const limit = positiveInt(inv.values, 'limit', 1000)
  const cursor = str(inv.values, 'cursor')
  const search = str(inv.values, 'search')
  if (limit !== undefined || cursor !== undefined) {
    const page = await fetch({ cursor, limit, search })
    const more = page.cursor === null ? '' : `\n(more: --cursor ${page.cursor})`
    inv.print(`${page.items.map(line).join('\n')}${more}`, { [key]: page.items.map(json), next_cursor: page.cursor })
    return
  }
  const all: T[] = []
  let next: string | undefined
  for (;;) {
    const page = await fetch({ cursor: next, limit: 500, search })
    all.push(...page.items)
    if (page.cursor === null) break
    next = page.cursor
  }
  inv.print(all.length === 0 ? `no ${key}` : all.map(line).join('\n'), { [key]: all.map(json), next_cursor: null })
}

export const PAGE_OPTIONS = {
  limit: { type: 'string' as const, value: 'n', description: 'print one page of about n entries (with the cursor of the next)' },
  cursor: { type: 'string' as const, value: 'cursor', description: 'continue from a previous page (give the same --search)' },
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
        email: { type: 'string', value: 'address', description: 'an email, unique case-insensitively; the user may sign in with it' },
        role: { type: 'string', multiple: true, value: 'role', description: 'a role (repeat for several)' },
        claims: { type: 'string', value: 'json', description: 'profile claims, a JSON object (name, email, ...)' },
        disabled: { type: 'boolean', description: 'add it disabled' },
      },
      details: 'Without --password-stdin or --password-file, the password is asked for on the terminal (not echoed).',
      examples: [
        "printf '%s' \"$PASSWORD\" | gatehouse users add alice --password-stdin --email alice@example.com --role admin --claims '{\"name\":\"Alice\"}'",
        'gatehouse users add bob --password-file /run/secrets/bob',
      ],
      async run(inv) {
        const admin = await ctx.admin()
        const claims = claimsOf(str(inv.values, 'claims'))
        const password = await readPassword(ctx.io, inv.values)
        const user = await admin.addUser({ username: inv.args[0]!, email: str(inv.values, 'email'), password, roles: list(inv.values, 'role'), ...(claims ? { claims } : {}), disabled: inv.values.disabled === true })
        inv.print(`added ${userLine(user)}`, { user: userJson(user) })
      },
    },
    {
      name: 'list',
      summary: 'list users',
      options: { ...PAGE_OPTIONS, search: { type: 'string', value: 'text', description: 'only users whose username or email contains text (case-insensitive)' } },
      examples: ['gatehouse users list', 'gatehouse users list --limit 100 --json', 'gatehouse users list --search example.com'],
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
        inv.print(`${userLine(user)}\nemail: ${user.email ?? '(none)'}${claims}\nsessions: ${families.length}`, { user: userJson(user), sessions: families.length })
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
      name: 'set-email',
      summary: "set or remove a user's email (unique case-insensitively; the user may sign in with it)",
      args: [USER_ARG, { name: 'email', description: 'the new email (omit with --clear)', optional: true }],
      options: { clear: { type: 'boolean', description: 'remove the email' } },
      examples: ['gatehouse users set-email alice alice@example.com', 'gatehouse users set-email alice --clear'],
      async run(inv) {
        const email = inv.args[1]
        if (email === undefined && inv.values.clear !== true) throw new UsageError('give the email, or --clear')
        if (email !== undefined && inv.values.clear === true) throw new UsageError('give the email or --clear, not both')
        const admin = await ctx.admin()
        const user = await admin.setEmail(inv.args[0]!, email ?? null)
        inv.print(user.email === undefined ? `email of ${user.username} removed` : `email of ${user.username}: ${user.email}`, { user: userJson(user) })
      },
    },
    {
      name: 'import',
      summary: 'add users from a JSON lines file, keeping their password hashes (bcrypt, argon2, PBKDF2, scrypt, Keycloak)',
      args: [{ name: 'file', description: 'the JSON lines file, or - for standard input' }],
      options: { 'dry-run': { type: 'boolean', description: 'check every line without adding anyone' } },
      details: [
        'One user per line: {"username": "...", "email": "...", "password_hash": "...", "roles": [...], "claims": {...},',
        '"disabled": false, "sub": "..."}; only username and password_hash are required. "sub" keeps the',
        "user's subject (what `users export` writes); without it a new one is made. password_hash is a",
        'bcrypt ($2a$/$2b$/$2y$), argon2id/argon2i, PBKDF2 ($pbkdf2-sha256$..., passlib or PHC-like) or scrypt',
        "($scrypt$ln=...) string, or Keycloak's credential object; it is verified as it is and replaced by",
        'argon2id at the next sign-in. Hashes whose cost is out of bounds are refused.',
        'A line that cannot be imported (bad JSON, username, email or hash; the user exists) is reported on',
        'standard error with its number and the reason, and skipped; the exit status is 1 if any was. A',
        'dry run checks each line against the directory, not against earlier lines of the same file.',
        'With DATABASE_URL users are added 500 lines at a time, one INSERT per batch (reports still name',
        'each line, in order, as each batch is done).',
      ].join('\n'),
      examples: ['gatehouse users import users.jsonl --dry-run', 'gatehouse users import users.jsonl', 'gunzip -c users.jsonl.gz | gatehouse users import -'],
      async run(inv) {
        const admin = await ctx.admin()
        const file = inv.args[0]!
        const dryRun = inv.values['dry-run'] === true
        let summary
        try {
          summary = await importUsers(admin, ctx.io, file, { dryRun, report: (line, reason) => ctx.io.stderr.write(`line ${line}: ${reason}\n`) })
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (typeof code === 'string' && code.startsWith('E')) throw new CliError(`cannot read ${file}: ${code}`)
          throw err
        }
        const human = `${dryRun ? 'would import' : 'imported'} ${summary.imported}, skipped ${summary.skipped}`
        const json = { dry_run: dryRun, imported: summary.imported, skipped: summary.skipped, failures: summary.failures }
        if (summary.skipped === 0) return inv.print(human, json)
        // Exit 1; the counts still go to stdout (beside the error with --json).
        if (inv.values.json !== true) inv.print(human, json)
        throw new CliError(`${summary.skipped} line(s) not imported (see above)`, EXIT_FAILURE, 'partial', json)
      },
    },
    {
      name: 'export',
      summary: 'write every user as JSON lines to standard output, with password hashes (the import format)',
      details: 'Each line carries "sub", so `users import` in another deployment keeps the subjects. The output holds password hashes: keep it as secret as the directory.',
      examples: ['gatehouse users export > users.jsonl'],
      async run() {
        const admin = await ctx.admin()
        const n = await exportUsers(admin, ctx.io)
        ctx.io.stderr.write(`exported ${n} user(s)\n`)
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
      name: 'factors',
      summary: "list a user's second factors (id, kind, label, created, last used; recovery codes left)",
      args: [USER_ARG],
      details: 'Kinds: totp (an authenticator app), passkey, recovery (a set of single-use recovery codes). Never shows a secret, key or code.',
      examples: ['gatehouse users factors alice', 'gatehouse users factors alice --json'],
      async run(inv) {
        const admin = await ctx.admin()
        const { user, factors } = await admin.listFactors(inv.args[0]!)
        inv.print(factors.length === 0 ? `${user.username} has no second factors` : factors.map(factorLine).join('\n'), { user_id: user.id, username: user.username, factors: factors.map(factorJson) })
      },
    },
    {
      name: 'remove-factor',
      summary: "remove one of a user's second factors, or all of them (--all: a lost phone; the password alone signs in again)",
      args: [USER_ARG, { name: 'factor-id', description: 'the id `users factors` shows (omit with --all)', optional: true }],
      options: { all: { type: 'boolean', description: 'remove every second factor of the user' } },
      destructive: true,
      details: 'Recorded in the audit trail as admin.factor_removed (or admin.factors_removed with --all), with each factor\'s kind and id. An id that starts with - is taken as the id (or put it after --).',
      examples: ['gatehouse users remove-factor alice 0QvJ5kQ2xq7vZ3m1a9LbRw --yes', 'gatehouse users remove-factor alice --all --yes'],
      async run(inv) {
        const factorId = inv.args[1]
        const all = inv.values.all === true
        if (factorId === undefined && !all) throw new UsageError('give the factor id, or --all')
        if (factorId !== undefined && all) throw new UsageError('give the factor id or --all, not both')
        const admin = await ctx.admin()
        const { user, factors } = await admin.listFactors(inv.args[0]!)
        if (all) {
          await inv.confirm(`Remove every second factor of ${user.username} (${factors.length})?`)
          const removed = await admin.removeAllFactors(inv.args[0]!)
          inv.print(`removed ${removed.factors.length} second factor(s) of ${user.username}`, { user_id: user.id, removed: removed.factors.map(factorJson) })
          return
        }
        const target = factors.find((f) => f.id === factorId)
        if (target === undefined) throw new CliError(`${user.username} has no second factor ${JSON.stringify(factorId)}`, EXIT_FAILURE, 'not_found')
        await inv.confirm(`Remove the ${target.kind} ${JSON.stringify(target.label)} (${target.id}) of ${user.username}?`)
        const { factor } = await admin.removeFactor(inv.args[0]!, target.id)
        inv.print(`removed ${factor.kind} ${factor.id} of ${user.username}`, { user_id: user.id, removed: [factorJson(factor)] })
      },
    },
    {
      name: 'delete',
      summary: 'delete a user; its login sessions end, its tokens are revoked and its second factors removed',
      args: [USER_ARG],
      destructive: true,
      examples: ['gatehouse users delete alice --yes'],
      async run(inv) {
        const admin = await ctx.admin()
        const target = await admin.findUser(inv.args[0]!)
        await inv.confirm(`Delete user ${target.username} (${target.id})?`)
        const { user, sessions, revoked, factors } = await admin.deleteUser(target.id)
        const removed = factors.length === 0 ? '' : `; ${factors.length} second factor(s) removed`
        inv.print(`deleted ${user.username}; ${revokedNote(sessions, revoked)}${removed}`, { user: userJson(user), ended_sessions: sessions.map((x) => x.id), revoked_families: revoked.map((f) => f.id), removed_factors: factors.map((f) => f.id) })
      },
    },
  ]
  return { name: 'users', summary: 'users: add, list, show, disable, enable, set-password, set-email, set-roles, factors, remove-factor, delete, import, export', commands }
}
