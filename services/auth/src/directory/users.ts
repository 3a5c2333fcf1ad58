import { createHash, randomBytes } from 'node:crypto'
import type { UserConfig } from './config-file.js'
import { dummyHash, hashPassword, verifyPassword } from './passwords.js'

export interface User {
  /** Stable subject identifier (the `sub` claim). */
  id: string
  username: string
  /** Unique case-insensitively among users (a user may sign in with it); undefined when none. */
  email: string | undefined
  passwordHash: string
  roles: string[]
  claims: Record<string, unknown>
  disabled: boolean
}

/** What `add` needs; the password arrives already hashed (passwords.ts). */
export interface NewUser {
  username: string
  email?: string | undefined
  passwordHash: string
  roles?: readonly string[]
  claims?: Record<string, unknown>
  disabled?: boolean
  /** Seeded users keep `userIdFor(username)`, so every replica and store agrees; otherwise random. */
  id?: string
}

/** `exists`: the username or the email is taken (both case-insensitively). */
export type AddUserResult = { status: 'created'; user: User } | { status: 'exists' }

/** `exists`: another user has that email. */
export type SetEmailResult = { status: 'updated'; user: User } | { status: 'not_found' } | { status: 'exists' }

/** A page request; `search` keeps the entries that contain it, case-insensitively. */
export interface ListQuery {
  cursor?: string | undefined
  /** A hint (Redis SCAN). */
  limit?: number | undefined
  search?: string | undefined
}

export interface UserPage {
  users: User[]
  /** Pass back to get the next page; null when there is none. */
  cursor: string | null
}

/**
 * Users (DESIGN §8, §10.2): verbs, not CRUD. Usernames and emails are each unique
 * case-insensitively; a user is found by name or email (login) or by id (the
 * `sub`, refresh). Outcomes are values (null: no such user); stores throw only
 * StoreUnavailable.
 */
export interface UserDirectory {
  findByUsername(username: string): Promise<User | null>
  /** Case-insensitive. */
  findByEmail(email: string): Promise<User | null>
  findById(id: string): Promise<User | null>
  add(input: NewUser): Promise<AddUserResult>
  /**
   * Optional bulk form of `add` (imports): the results in input order, as if each input had been
   * added one after the other (a later input that repeats an earlier one's id, username or email,
   * case-insensitively, is `exists`).
   */
  addMany?(inputs: readonly NewUser[]): Promise<AddUserResult[]>
  /**
   * One page, in no guaranteed order across pages; `search`: a case-insensitive substring of the
   * username or the email. A page may hold fewer entries than `limit` and still have a cursor.
   */
  list(query?: ListQuery): Promise<UserPage>
  setPassword(id: string, passwordHash: string): Promise<User | null>
  setDisabled(id: string, disabled: boolean): Promise<User | null>
  setRoles(id: string, roles: readonly string[]): Promise<User | null>
  /** Removes the user; returns what was removed. */
  delete(id: string): Promise<User | null>
  /** Sets (or, with null, removes) the user's email; `exists` when another user has it. */
  setEmail(id: string, email: string | null): Promise<SetEmailResult>
}

/** A stable, opaque subject for a username, the same on every replica. */
export function userIdFor(username: string): string {
  return `u_${createHash('sha256').update(username.toLowerCase()).digest('base64url').slice(0, 22)}`
}

/** A fresh subject for a user added by an administrator (never reused, OIDC Core §2 `sub`). */
export function newUserId(): string {
  return `u_${randomBytes(16).toString('base64url')}`
}

/** The form usernames are unique in (case-insensitive). */
export function canonicalUsername(username: string): string {
  return username.toLowerCase()
}

/** Why a username is unacceptable, or null. */
export function usernameProblem(username: string): string | null {
  if (username.length === 0 || username.length > 256) return 'a username has 1 to 256 characters'
  if (username.trim() !== username) return 'a username must not start or end with whitespace'
  if (/[\x00-\x1f\x7f]/.test(username)) return 'a username must not contain control characters'
  return null
}

/** The form emails are unique in (case-insensitive). */
export function canonicalEmail(email: string): string {
  return email.toLowerCase()
}

/**
 * Why an email is unacceptable, or null: a sanity check (3 to 254 characters, one `@` with
 * something on each side, no whitespace or control characters), not RFC 5322 validation; whether
 * the address works is the mail server's to say.
 */
export function emailProblem(email: string): string | null {
  if (typeof email !== 'string' || email.length < 3 || email.length > 254) return 'an email has 3 to 254 characters'
  if (/[\s\x00-\x1f\x7f]/u.test(email)) return 'an email must not contain spaces or control characters'
  const at = email.indexOf('@')
  if (at <= 0 || at !== email.lastIndexOf('@') || at === email.length - 1) return "an email has exactly one '@', with text on both sides"
  return null
}

/** Does `search` occur in any of `fields`, case-insensitively? (No search: yes.) */
export function matchesSearch(search: string | undefined, ...fields: readonly (string | undefined)[]): boolean {
  if (search === undefined || search === '') return true
  const s = search.toLowerCase()
  return fields.some((f) => f !== undefined && f.toLowerCase().includes(s))
}

/** One page of a sorted list by offset (the memory directories' cursor is the offset). */
export function offsetPage<T>(all: readonly T[], query: ListQuery): { items: T[]; cursor: string | null } {
  const from = query.cursor === undefined ? 0 : Number(query.cursor)
  const start = Number.isSafeInteger(from) && from >= 0 ? from : all.length
  const end = Math.min(all.length, start + Math.max(1, query.limit ?? 100))
  return { items: all.slice(start, end), cursor: end < all.length ? String(end) : null }
}

/** Why a role name is unacceptable, or null (roles travel in tokens as a JSON array of names). */
export function roleProblem(role: string): string | null {
  return /^[\x21-\x7e]{1,64}$/.test(role) ? null : `invalid role ${JSON.stringify(role)} (1 to 64 visible ASCII characters)`
}

export class MemoryUserDirectory implements UserDirectory {
  readonly #byName = new Map<string, User>()
  readonly #byId = new Map<string, User>()
  readonly #byEmail = new Map<string, User>()

  static async fromConfig(users: readonly UserConfig[]): Promise<MemoryUserDirectory> {
    const dir = new MemoryUserDirectory()
    for (const u of users) {
      const passwordHash = u.password_hash ?? (await hashPassword(u.password!))
      await dir.add({ id: userIdFor(u.username), username: u.username, email: u.email, passwordHash, roles: u.roles, claims: u.claims, disabled: u.disabled })
    }
    return dir
  }

  async findByUsername(username: string): Promise<User | null> {
    return copy(this.#byName.get(canonicalUsername(username)))
  }

  async findByEmail(email: string): Promise<User | null> {
    return typeof email === 'string' ? copy(this.#byEmail.get(canonicalEmail(email))) : null
  }

  async findById(id: string): Promise<User | null> {
    return copy(this.#byId.get(id))
  }

  async add(input: NewUser): Promise<AddUserResult> {
    const name = canonicalUsername(input.username)
    if (this.#byName.has(name)) return { status: 'exists' }
    const email = input.email === undefined ? undefined : canonicalEmail(input.email)
    if (email !== undefined && this.#byEmail.has(email)) return { status: 'exists' }
    let id = input.id ?? newUserId()
    while (input.id === undefined && this.#byId.has(id)) id = newUserId()
    if (this.#byId.has(id)) return { status: 'exists' }
    const user: User = {
      id,
      username: input.username,
      email: input.email,
      passwordHash: input.passwordHash,
      roles: [...(input.roles ?? [])],
      claims: { ...(input.claims ?? {}) },
      disabled: input.disabled ?? false,
    }
    this.#byName.set(name, user)
    this.#byId.set(id, user)
    if (email !== undefined) this.#byEmail.set(email, user)
    return { status: 'created', user: copy(user)! }
  }

  async list(query: ListQuery = {}): Promise<UserPage> {
    const all = [...this.#byName.keys()].sort().map((n) => this.#byName.get(n)!).filter((u) => matchesSearch(query.search, u.username, u.email))
    const page = offsetPage(all, query)
    return { users: page.items.map((u) => copy(u)!), cursor: page.cursor }
  }

  async setPassword(id: string, passwordHash: string): Promise<User | null> {
    return this.#update(id, (u) => (u.passwordHash = passwordHash))
  }

  async setDisabled(id: string, disabled: boolean): Promise<User | null> {
    return this.#update(id, (u) => (u.disabled = disabled))
  }

  async setRoles(id: string, roles: readonly string[]): Promise<User | null> {
    return this.#update(id, (u) => (u.roles = [...roles]))
  }

  async setEmail(id: string, email: string | null): Promise<SetEmailResult> {
    const user = this.#byId.get(id)
    if (user === undefined) return { status: 'not_found' }
    if (email !== null) {
      const holder = this.#byEmail.get(canonicalEmail(email))
      if (holder !== undefined && holder !== user) return { status: 'exists' }
    }
    if (user.email !== undefined) this.#byEmail.delete(canonicalEmail(user.email))
    user.email = email ?? undefined
    if (email !== null) this.#byEmail.set(canonicalEmail(email), user)
    return { status: 'updated', user: copy(user)! }
  }

  async delete(id: string): Promise<User | null> {
    const user = this.#byId.get(id)
    if (user === undefined) return null
    this.#byId.delete(id)
    this.#byName.delete(canonicalUsername(user.username))
    if (user.email !== undefined) this.#byEmail.delete(canonicalEmail(user.email))
    return copy(user)
  }

  #update(id: string, change: (u: User) => void): User | null {
    const user = this.#byId.get(id)
    if (user === undefined) return null
    change(user)
    return copy(user)
  }
}

/** Callers get copies: a directory's records change only through its verbs. */
function copy(u: User | undefined): User | null {
  return u === undefined ? null : { ...u, roles: [...u.roles], claims: { ...u.claims } }
}

/** The user a login names: by username, else (when it has an `@`) by email. */
export async function findLogin(users: UserDirectory, login: string): Promise<User | null> {
  const byName = login.length <= 256 ? await users.findByUsername(login) : null
  return byName ?? (login.length <= 254 && login.includes('@') ? await users.findByEmail(login) : null)
}

/**
 * Checks a username (or, when no user has that name, an email) and password. Unknown user,
 * disabled user and wrong password are indistinguishable: the KDF runs in every case (DESIGN §3).
 */
export async function authenticateUser(
  users: UserDirectory,
  username: string,
  password: string,
  verify: (phc: string, password: string) => Promise<boolean> = verifyPassword,
): Promise<User | null> {
  const user = await findLogin(users, username)
  const ok = await verify(user?.passwordHash ?? (await dummyHash()), password)
  if (!user || !ok || user.disabled) return null
  return user
}
