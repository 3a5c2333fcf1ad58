import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Admin } from './admin.js'
import type { CliIO } from './framework.js'
import { importPasswordHash } from '../directory/password-hashes.js'
import { emailProblem, roleProblem, usernameProblem, type NewUser, type User } from '../directory/users.js'

/**
 * `gatehouse users import` and `users export` (DESIGN §10.2): JSON lines, one user per line,
 * `{"username", "email", "password_hash", "roles", "claims", "disabled"}`, plus our extension
 * `"sub"` (docs/design.md): the subject, kept across an export → import between deployments so
 * refresh families, sessions and the resource servers' records still name the same user.
 *
 * A line that cannot be imported is reported by number and reason only (never its content: it
 * holds a password hash), and skipped. The file is streamed a line at a time. Where the directory
 * adds in bulk (PostgreSQL), users go to it 500 at a time, one statement a batch, with the outcome
 * of each line as if they had been added one after the other; elsewhere (and in a dry run) one
 * at a time. Either way a line that repeats an earlier line's username, email or `sub` is skipped.
 */

/** Lines per batch where the directory adds in bulk (PostgreSQL: one INSERT per batch). */
const IMPORT_BATCH = 500
const EXISTS = 'a user with this username, email or sub exists'

/** A line longer than this is refused without being parsed (a user record is far smaller). */
const MAX_LINE = 64 * 1024
/** A subject we keep: ours (`u_…`) or another provider's (a UUID, …), safe in keys and tokens. */
const SUBJECT = /^[A-Za-z0-9_-]{1,128}$/

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** One line of the import format as the user to add, or why it cannot be. */
export function parseImportLine(line: string): { user: NewUser } | { problem: string } {
  if (line.length > MAX_LINE) return { problem: `longer than ${MAX_LINE} characters` }
  let doc: unknown
  try {
    doc = JSON.parse(line)
  } catch {
    // Not the parser's message: it quotes the line, and the line holds a password hash.
    return { problem: 'not valid JSON' }
  }
  if (!isObj(doc)) return { problem: 'not a JSON object' }
  const { username, email, password_hash: passwordHash, roles, claims, disabled, sub } = doc
  if (typeof username !== 'string') return { problem: 'username must be a string' }
  const nameProblem = usernameProblem(username)
  if (nameProblem !== null) return { problem: nameProblem }
  if (email !== undefined && email !== null && typeof email !== 'string') return { problem: 'email must be a string or null' }
  const mailProblem = typeof email === 'string' ? emailProblem(email) : null
  if (mailProblem !== null) return { problem: mailProblem }
  if (passwordHash === undefined || passwordHash === null) return { problem: 'password_hash is required' }
  const hash = importPasswordHash(passwordHash)
  if ('problem' in hash) return { problem: `password_hash: ${hash.problem}` }
  if (roles !== undefined && (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string'))) return { problem: 'roles must be an array of strings' }
  const roleList = (roles ?? []) as string[]
  const badRole = roleList.map(roleProblem).find((p) => p !== null)
  if (badRole !== undefined) return { problem: badRole }
  if (claims !== undefined && claims !== null && !isObj(claims)) return { problem: 'claims must be an object' }
  if (disabled !== undefined && typeof disabled !== 'boolean') return { problem: 'disabled must be true or false' }
  if (sub !== undefined && sub !== null && (typeof sub !== 'string' || !SUBJECT.test(sub))) return { problem: 'sub must be 1 to 128 letters, digits, - or _' }
  const user: NewUser = {
    username,
    passwordHash: hash.hash,
    roles: [...new Set(roleList)],
    claims: isObj(claims) ? claims : {},
    disabled: disabled === true,
  }
  if (typeof email === 'string') user.email = email
  if (typeof sub === 'string') user.id = sub
  return { user }
}

/** A user as one line of the export (the password hash as stored; the sub so an import keeps it). */
export function exportLine(u: User): string {
  return JSON.stringify({ sub: u.id, username: u.username, email: u.email ?? null, password_hash: u.passwordHash, roles: u.roles, claims: u.claims, disabled: u.disabled })
}

export interface ImportSummary {
  imported: number
  skipped: number
  /** Line number and reason of each skipped line. */
  failures: { line: number; reason: string }[]
}

/** Imports every line of `file` (`-`: standard input); `report` hears each skipped line at once. */
export async function importUsers(
  admin: Admin,
  io: CliIO,
  file: string,
  opts: { dryRun: boolean; report: (line: number, reason: string) => void },
): Promise<ImportSummary> {
  const input = file === '-' ? io.stdin : createReadStream(file)
  const lines = createInterface({ input, crlfDelay: Infinity })
  const summary: ImportSummary = { imported: 0, skipped: 0, failures: [] }
  const skip = (line: number, reason: string): void => {
    summary.skipped++
    // Bounded: the report already went to stderr; the summary keeps the first thousand.
    if (summary.failures.length < 1000) summary.failures.push({ line, reason })
    opts.report(line, reason)
  }
  // Parsed lines wait here until a batch is full, then go to the directory at once (addMany);
  // every line, good or bad, is reported in file order when its batch is settled.
  const pending: ({ line: number; user: NewUser } | { line: number; problem: string })[] = []
  const flush = async (): Promise<void> => {
    const batch = pending.splice(0)
    const toAdd = batch.flatMap((p) => ('user' in p ? [p.user] : []))
    const outcomes = toAdd.length === 0 ? [] : await admin.importUsers(toAdd)
    let i = 0
    for (const p of batch) {
      if ('problem' in p) skip(p.line, p.problem)
      else if (outcomes[i++] === 'exists') skip(p.line, EXISTS)
      else summary.imported++
    }
  }
  const bulk = !opts.dryRun && admin.bulkImport
  let n = 0
  for await (const text of lines) {
    n++
    if (text.trim() === '') continue
    const parsed = parseImportLine(text)
    if (bulk) {
      pending.push({ line: n, ...parsed })
      if (pending.length >= IMPORT_BATCH) await flush()
      continue
    }
    if ('problem' in parsed) {
      skip(n, parsed.problem)
      continue
    }
    const outcome = await admin.importUser(parsed.user, opts.dryRun)
    if (outcome === 'exists') skip(n, EXISTS)
    else summary.imported++
  }
  if (pending.length > 0) await flush()
  admin.importFinished({ file, imported: summary.imported, skipped: summary.skipped, dryRun: opts.dryRun })
  return summary
}

/** Writes every user, a line each, to standard output (paged through the directory's list). */
export async function exportUsers(admin: Admin, io: CliIO): Promise<number> {
  let exported = 0
  let cursor: string | undefined
  do {
    const page = await admin.listUsers({ cursor, limit: 500 })
    for (const u of page.users) {
      const ok = io.stdout.write(`${exportLine(u)}\n`)
      exported++
      // A slow reader of a pipe: wait for it rather than buffer the whole directory.
      const out = io.stdout as Partial<NodeJS.WritableStream>
      if (ok === false && typeof out.once === 'function') await new Promise((resolve) => out.once!('drain', resolve))
    }
    cursor = page.cursor ?? undefined
  } while (cursor !== undefined)
  admin.exportFinished({ exported })
  return exported
}
