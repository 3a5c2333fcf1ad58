import { createHash, randomBytes } from 'node:crypto'
import type { UserConfig } from './config-file.js'
import { dummyHash, hashPassword, verifyPassword } from './passwords.js'

export interface User {
  /** Stable subject identifier (the `sub` claim). */
  id: string
  username: string
  /** Unique case-insensitively (canonicalEmail); a user may sign in with it. */
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

/** `exists`: the username or the email is taken (case-insensitively). */
export type AddUserResult = { status: 'created'; user: User } | { status: 'exists' }

export type SetEmailResult = { status: 'updated'; user: User } | { status: 'not_found' } | { status: 'exists' }

export interface ListQuery {
  cursor?: string | undefined
  limit?: number | undefined
  /** Case-insensitive substring of the username or email (users), of the client_id or client_name (clients). */
  search?: string | undefined
}

export interface UserPage {
  users: User[]
  /** Pass back to get the next page; null when there is none. */
  cursor: string | null
}

/**
 * Users (DESIGN §8): verbs, not CRUD. Usernames are unique case-insensitively;
 * a user is found by name (login) or by id (the `sub`, refresh). Outcomes are
 * values (null: no such user); stores throw only StoreUnavailable.
 */
export interface UserDirectory {
  findByUsername(username: string): Promise<User | null>
  /** Case-insensitive. */
  findByEmail(email: string): Promise<User | null>
  findById(id: string): Promise<User | null>
  add(input: NewUser): Promise<AddUserResult>
  /** One page, in no guaranteed order across pages; `limit` is a hint (Redis SCAN). */
  list(query?: ListQuery): Promise<UserPage>
  setPassword(id: string, passwordHash: string): Promise<User | null>
  setDisabled(id: string, disabled: boolean): Promise<User | null>
  setRoles(id: string, roles: readonly string[]): Promise<User | null>
  /** Removes the user; returns what was removed. */
  delete(id: string): Promise<User | null>
  /** Sets (or, with null, removes) the user's email. */
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

/** The form emails are unique in (case-insensitive). */
export function canonicalEmail(email: string): string {
  return email.toLowerCase()
}

/** Why a username is unacceptable, or null. */
export function usernameProblem(username: string): string | null {
  if (username.length === 0 || username.length > 256) return 'a username has 1 to 256 characters'
  if (username.trim() !== username) return 'a username must not start or end with whitespace'
  if (/[\x00-\x1f\x7f]/.test(username)) return 'a username must not contain control characters'
  return null
}

/** Why a role name is unacceptable, or null (roles travel in tokens as a JSON array of names). */
export function roleProblem(role: string): string | null {
  return /^[\x21-\x7e]{1,64}$/.test(role) ? null : `invalid role ${JSON.stringify(role)} (1 to 64 visible ASCII characters)`
}

export class MemoryUserDirectory implements UserDirectory {
  readonly #byName = new Map<string, User>()
  readonly #byId = new Map<string, User>()

  static async fromConfig(users: readonly UserConfig[]): Promise<MemoryUserDirectory> {
    const dir = new MemoryUserDirectory()
    for (const u of users) {
      const passwordHash = u.password_hash ?? (await hashPassword(u.password!))
      await dir.add({ id: userIdFor(u.username), username: u.username, passwordHash, roles: u.roles, claims: u.claims, disabled: u.disabled })
    }
    return dir
  }

  async findByUsername(username: string): Promise<User | null> {
    return copy(this.#byName.get(canonicalUsername(username)))
  }

  async findById(id: string): Promise<User | null> {
    return copy(this.#byId.get(id))
  }

  // Minimal (branch pg) until branch ident gives the memory directory its email index.
  async findByEmail(email: string): Promise<User | null> {
    return copy([...this.#byId.values()].find((u) => u.email !== undefined && canonicalEmail(u.email) === canonicalEmail(email)))
  }

  // Minimal (branch pg), as findByEmail.
  async setEmail(id: string, email: string | null): Promise<SetEmailResult> {
    const user = this.#byId.get(id)
    if (user === undefined) return { status: 'not_found' }
    if (email !== null && (await this.findByEmail(email)) !== null) return { status: 'exists' }
    user.email = email ?? undefined
    return { status: 'updated', user: copy(user)! }
  }

  async add(input: NewUser): Promise<AddUserResult> {
    const name = canonicalUsername(input.username)
    if (this.#byName.has(name)) return { status: 'exists' }
    if (input.email !== undefined && (await this.findByEmail(input.email)) !== null) return { status: 'exists' }
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
    return { status: 'created', user: copy(user)! }
  }

  async list(page: ListQuery = {}): Promise<UserPage> {
    const search = page.search?.toLowerCase()
    const all = [...this.#byName.keys()].sort().filter((n) => search === undefined || n.includes(search) || (this.#byName.get(n)!.email?.toLowerCase().includes(search) ?? false))
    const from = page.cursor === undefined ? 0 : Number(page.cursor)
    const start = Number.isSafeInteger(from) && from >= 0 ? from : all.length
    const end = Math.min(all.length, start + Math.max(1, page.limit ?? 100))
    const users = all.slice(start, end).map((n) => copy(this.#byName.get(n))!)
    return { users, cursor: end < all.length ? String(end) : null }
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

  async delete(id: string): Promise<User | null> {
    const user = this.#byId.get(id)
    if (user === undefined) return null
    this.#byId.delete(id)
    this.#byName.delete(canonicalUsername(user.username))
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

/**
 * Checks a username and password. Unknown user, disabled user and wrong
 * password are indistinguishable: the KDF runs in every case (DESIGN §3).
 */
export async function authenticateUser(
  users: UserDirectory,
  username: string,
  password: string,
  verify: (phc: string, password: string) => Promise<boolean> = verifyPassword,
): Promise<User | null> {
  const user = username.length <= 256 ? await users.findByUsername(username) : null
  const ok = await verify(user?.passwordHash ?? (await dummyHash()), password)
  if (!user || !ok || user.disabled) return null
  return user
}
