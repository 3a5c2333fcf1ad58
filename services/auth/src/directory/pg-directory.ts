import { clientFromConfig, storedClientConfig, type AddClientResult, type Client, type ClientDirectory, type ClientPage } from './clients.js'
import type { ClientConfig } from './config-file.js'
import { noAnnouncements, type ChangeAnnouncer } from './directory-cache.js'
import { storedClient } from './stored-client.js'
import type { SeedMarks } from './seed.js'
import {
  canonicalEmail,
  canonicalUsername,
  newUserId,
  type AddUserResult,
  type ListQuery,
  type NewUser,
  type SetEmailResult,
  type User,
  type UserDirectory,
  type UserPage,
} from './users.js'
import { isUniqueViolation, pgCall } from '../database/pg-call.js'
import type { Pool } from '../database/pool.js'

/**
 * (Over 300 lines: users and clients share the paging, the row mapping and the error handling, and
 * each directory is one class whose verbs read best side by side.)
 *
 * Users and clients in PostgreSQL (DESIGN §10.2; the tables of migrations/0001_directory.sql):
 * with DATABASE_URL the database, not the config file, is the source of truth (the file only
 * seeds it, seed.ts).
 *
 * Usernames and emails are unique on keys the service computes (canonicalUsername,
 * canonicalEmail), so the database's constraints decide a race between two adds, whatever its
 * collation. Every query is parameterized and goes through pgCall (a failure is 503, never 500);
 * one statement per verb, so no transaction is ever held open across a network wait. Listing is
 * keyset paging (the cursor is the last key seen), so a page costs the same on the millionth user
 * as on the first. Changes are announced (directory-cache.ts) so every replica's cache drops its
 * copy before the verb returns.
 */

export interface PgDirectoryOptions {
  pool: Pool
  /** Default: nobody to tell (no Redis, hence no per-replica cache). */
  changes?: ChangeAnnouncer
}

const USER_COLUMNS = 'id, username, email, password_hash, roles, claims, disabled'
const INSERT_COLUMNS = 'id, username, username_key, email, email_key, password_hash, roles, claims, disabled'
const INSERT_WIDTH = 9
/** Rows per INSERT of addMany: 9 parameters each, far below PostgreSQL's 65,535. */
const MAX_BATCH = 1000

/** `$n+1, …, $n+9`: one row's parameters. */
function placeholders(offset: number): string {
  return Array.from({ length: INSERT_WIDTH }, (_, i) => `$${offset + i + 1}`).join(', ')
}

/** A new user's row, in INSERT_COLUMNS order. */
function insertValues(input: NewUser, id: string): unknown[] {
  const email = input.email ?? null
  return [
    id,
    input.username,
    canonicalUsername(input.username),
    email,
    email === null ? null : canonicalEmail(email),
    input.passwordHash,
    [...(input.roles ?? [])],
    JSON.stringify(input.claims ?? {}),
    input.disabled ?? false,
  ]
}

interface UserRow {
  id: string
  username: string
  email: string | null
  password_hash: string
  roles: string[]
  claims: Record<string, unknown>
  disabled: boolean
}

interface ClientRow {
  client_id: string
  config: unknown
  secret_hash: string | null
}

/** PostgreSQL text cannot hold NUL: a key with one names no record (and must not become a 503). */
function unusable(key: string, max: number): boolean {
  return typeof key !== 'string' || key.length === 0 || key.length > max || key.includes('\u0000')
}

/** A page size within bounds (default 100, at most 1000). */
function pageSize(limit: number | undefined): number {
  return Math.max(1, Math.min(Math.trunc(limit ?? 100), 1000))
}

/** The opaque cursor of keyset paging: the last key of the page, base64url. */
function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url')
}

function decodeCursor(cursor: string | undefined): string | null {
  if (cursor === undefined) return null
  if (!/^[A-Za-z0-9_-]{1,2048}$/.test(cursor)) throw new RangeError('invalid cursor')
  const key = Buffer.from(cursor, 'base64url').toString('utf8')
  if (key.includes('\u0000') || encodeCursor(key) !== cursor) throw new RangeError('invalid cursor')
  return key
}

/** A case-insensitive substring pattern for ILIKE: `%`, `_` and `\` in the search match themselves. */
export function containsPattern(search: string | undefined): string | null {
  if (search === undefined || search === '') return null
  return `%${search.replace(/\u0000/g, '').replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/** One page of rows after `cursor` on `keyColumn`, `limit` of them, and the next cursor. */
async function keysetPage<R>(pool: Pool, op: string, sql: { select: string; key: string; where: string }, query: ListQuery): Promise<{ rows: R[]; cursor: string | null }> {
  const limit = pageSize(query.limit)
  const after = decodeCursor(query.cursor)
  const pattern = containsPattern(query.search)
  const text = `${sql.select} WHERE ($1::text IS NULL OR ${sql.key} > $1) AND ($2::text IS NULL OR ${sql.where}) ORDER BY ${sql.key} LIMIT $3`
  const { rows } = await pgCall(op, () => pool.query(text, [after, pattern, limit + 1]))
  const page = rows.slice(0, limit) as (R & { page_key: string })[]
  const last = page[page.length - 1]
  return { rows: page, cursor: rows.length > limit && last !== undefined ? encodeCursor(last.page_key) : null }
}

export class PgUserDirectory implements UserDirectory {
  readonly #pool: Pool
  readonly #changes: ChangeAnnouncer

  constructor(opts: PgDirectoryOptions) {
    this.#pool = opts.pool
    this.#changes = opts.changes ?? noAnnouncements
  }

  async findByUsername(username: string): Promise<User | null> {
    if (unusable(username, 256)) return null
    return await this.#one('users.find', `SELECT ${USER_COLUMNS} FROM users WHERE username_key = $1`, [canonicalUsername(username)])
  }

  async findByEmail(email: string): Promise<User | null> {
    if (unusable(email, 254)) return null
    return await this.#one('users.find', `SELECT ${USER_COLUMNS} FROM users WHERE email_key = $1`, [canonicalEmail(email)])
  }

  async findById(id: string): Promise<User | null> {
    if (unusable(id, 128)) return null
    return await this.#one('users.find', `SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id])
  }

  async add(input: NewUser): Promise<AddUserResult> {
    // No conflict target: a taken id, username or email all end in DO NOTHING, decided by the
    // unique indexes even between two concurrent adds.
    const sql = `INSERT INTO users (${INSERT_COLUMNS}) VALUES (${placeholders(0)}) ON CONFLICT DO NOTHING RETURNING ${USER_COLUMNS}`
    const user = await this.#one('users.add', sql, insertValues(input, input.id ?? newUserId()))
    return user === null ? { status: 'exists' } : { status: 'created', user }
  }

  /**
   * An import's batch in one statement: a multi-row INSERT … ON CONFLICT DO NOTHING, every value a
   * parameter. An input repeating an earlier input's id, username or email is `exists` without
   * being sent (so the first one wins, as with one add after the other); of the rest, those whose
   * id comes back were created, the others met a row already there.
   */
  async addMany(inputs: readonly NewUser[]): Promise<AddUserResult[]> {
    const seen = new Set<string>()
    const rows: { index: number; values: unknown[] }[] = []
    const results: AddUserResult[] = inputs.map(() => ({ status: 'exists' }))
    inputs.forEach((input, index) => {
      const id = input.id ?? newUserId()
      const keys = [`i:${id}`, `u:${canonicalUsername(input.username)}`, ...(input.email === undefined ? [] : [`e:${canonicalEmail(input.email)}`])]
      if (keys.some((k) => seen.has(k))) return
      for (const k of keys) seen.add(k)
      rows.push({ index, values: insertValues(input, id) })
    })
    for (let from = 0; from < rows.length; from += MAX_BATCH) {
      const chunk = rows.slice(from, from + MAX_BATCH)
      const sql = `INSERT INTO users (${INSERT_COLUMNS}) VALUES ${chunk.map((_, i) => `(${placeholders(i * INSERT_WIDTH)})`).join(', ')}
        ON CONFLICT DO NOTHING RETURNING ${USER_COLUMNS}`
      const { rows: created } = await pgCall('users.add_many', () => this.#pool.query<UserRow>(sql, chunk.flatMap((r) => r.values)))
      const byId = new Map(created.map((r) => [r.id, r]))
      for (const r of chunk) {
        const row = byId.get(r.values[0] as string)
        if (row !== undefined) results[r.index] = { status: 'created', user: toUser(row) }
      }
    }
    return results
  }

  async list(query: ListQuery = {}): Promise<UserPage> {
    const { rows, cursor } = await keysetPage<UserRow>(this.#pool, 'users.list', {
      select: `SELECT ${USER_COLUMNS}, username_key AS page_key FROM users`,
      key: 'username_key',
      where: `(username ILIKE $2 OR email ILIKE $2)`,
    }, query)
    return { users: rows.map(toUser), cursor }
  }

  async setPassword(id: string, passwordHash: string): Promise<User | null> {
    return await this.#update(id, 'password_hash = $2', passwordHash)
  }

  async setDisabled(id: string, disabled: boolean): Promise<User | null> {
    return await this.#update(id, 'disabled = $2', disabled)
  }

  async setRoles(id: string, roles: readonly string[]): Promise<User | null> {
    return await this.#update(id, 'roles = $2', [...roles])
  }

  async setEmail(id: string, email: string | null): Promise<SetEmailResult> {
    if (unusable(id, 128)) return { status: 'not_found' }
    try {
      const user = await this.#update(id, 'email = $2, email_key = $3', email, email === null ? null : canonicalEmail(email))
      return user === null ? { status: 'not_found' } : { status: 'updated', user }
    } catch (err) {
      if (isUniqueViolation(err instanceof Error ? err.cause : undefined)) return { status: 'exists' }
      throw err
    }
  }

  async delete(id: string): Promise<User | null> {
    if (unusable(id, 128)) return null
    const user = await this.#one('users.delete', `DELETE FROM users WHERE id = $1 RETURNING ${USER_COLUMNS}`, [id])
    if (user !== null) await this.#changes.announce({ kind: 'user', id })
    return user
  }

  async #update(id: string, set: string, ...values: unknown[]): Promise<User | null> {
    if (unusable(id, 128)) return null
    const user = await this.#one('users.update', `UPDATE users SET ${set}, updated_at = now() WHERE id = $1 RETURNING ${USER_COLUMNS}`, [id, ...values])
    if (user !== null) await this.#changes.announce({ kind: 'user', id })
    return user
  }

  async #one(op: string, sql: string, values: unknown[]): Promise<User | null> {
    const { rows } = await pgCall(op, () => this.#pool.query<UserRow>(sql, values))
    return rows[0] === undefined ? null : toUser(rows[0])
  }
}

function toUser(r: UserRow): User {
  return { id: r.id, username: r.username, email: r.email ?? undefined, passwordHash: r.password_hash, roles: [...r.roles], claims: { ...r.claims }, disabled: r.disabled }
}

/**
 * A client row holds the config-file form (jsonb, without any secret) and the secret's hash beside
 * it, as the Redis record does, so rotating a secret touches one column.
 */
export class PgClientDirectory implements ClientDirectory {
  readonly #pool: Pool
  readonly #changes: ChangeAnnouncer

  constructor(opts: PgDirectoryOptions) {
    this.#pool = opts.pool
    this.#changes = opts.changes ?? noAnnouncements
  }

  async get(clientId: string): Promise<Client | null> {
    if (unusable(clientId, 256)) return null
    const { rows } = await pgCall('clients.get', () => this.#pool.query<ClientRow>('SELECT client_id, config, secret_hash FROM clients WHERE client_id = $1', [clientId]))
    return rows[0] === undefined ? null : toClient(rows[0])
  }

  async add(config: ClientConfig): Promise<AddClientResult> {
    const stored = storedClientConfig(config)
    const { client_secret_hash: secretHash, ...rest } = stored
    const sql = 'INSERT INTO clients (client_id, config, secret_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING client_id'
    const { rowCount } = await pgCall('clients.add', () => this.#pool.query(sql, [config.client_id, JSON.stringify(rest), secretHash ?? null]))
    return rowCount === 1 ? { status: 'created', client: clientFromConfig(stored) } : { status: 'exists' }
  }

  async list(query: ListQuery = {}): Promise<ClientPage> {
    const { rows, cursor } = await keysetPage<ClientRow>(this.#pool, 'clients.list', {
      select: 'SELECT client_id, config, secret_hash, client_id AS page_key FROM clients',
      key: 'client_id',
      where: `(client_id ILIKE $2 OR config->>'client_name' ILIKE $2)`,
    }, query)
    return { clients: rows.map(toClient), cursor }
  }

  async rotateSecret(clientId: string, secretHash: string): Promise<Client | null> {
    if (unusable(clientId, 256)) return null
    const sql = 'UPDATE clients SET secret_hash = $2, updated_at = now() WHERE client_id = $1 RETURNING client_id, config, secret_hash'
    const { rows } = await pgCall('clients.rotate', () => this.#pool.query<ClientRow>(sql, [clientId, secretHash]))
    if (rows[0] === undefined) return null
    await this.#changes.announce({ kind: 'client', id: clientId })
    return toClient(rows[0])
  }

  async delete(clientId: string): Promise<Client | null> {
    if (unusable(clientId, 256)) return null
    const { rows } = await pgCall('clients.delete', () => this.#pool.query<ClientRow>('DELETE FROM clients WHERE client_id = $1 RETURNING client_id, config, secret_hash', [clientId]))
    if (rows[0] === undefined) return null
    await this.#changes.announce({ kind: 'client', id: clientId })
    return toClient(rows[0])
  }
}

function toClient(r: ClientRow): Client {
  return clientFromConfig(storedClient(r.config, r.secret_hash, 'postgres'))
}

/** The seeded markers (seed.ts) in the `directory_seeded` table. */
export function pgSeedMarks(pool: Pool): SeedMarks {
  return {
    has: async (marker) => (await pgCall('seed', () => pool.query('SELECT 1 FROM directory_seeded WHERE entry = $1', [marker]))).rowCount === 1,
    add: async (marker) => void (await pgCall('seed', () => pool.query('INSERT INTO directory_seeded (entry) VALUES ($1) ON CONFLICT DO NOTHING', [marker]))),
  }
}
