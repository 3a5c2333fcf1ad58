import { createHash } from 'node:crypto'
import type { UserConfig } from './config-file.js'
import { dummyHash, hashPassword, verifyPassword } from './passwords.js'

export interface User {
  /** Stable subject identifier (the `sub` claim). */
  id: string
  username: string
  passwordHash: string
  roles: string[]
  claims: Record<string, unknown>
  disabled: boolean
}

export interface UserDirectory {
  findByUsername(username: string): Promise<User | null>
  findById(id: string): Promise<User | null>
}

/** A stable, opaque subject for a username, the same on every replica. */
export function userIdFor(username: string): string {
  return `u_${createHash('sha256').update(username.toLowerCase()).digest('base64url').slice(0, 22)}`
}

export class MemoryUserDirectory implements UserDirectory {
  readonly #byName = new Map<string, User>()
  readonly #byId = new Map<string, User>()

  add(user: User): void {
    this.#byName.set(user.username.toLowerCase(), user)
    this.#byId.set(user.id, user)
  }

  static async fromConfig(users: readonly UserConfig[]): Promise<MemoryUserDirectory> {
    const dir = new MemoryUserDirectory()
    for (const u of users) {
      const passwordHash = u.password_hash ?? (await hashPassword(u.password!))
      dir.add({ id: userIdFor(u.username), username: u.username, passwordHash, roles: [...u.roles], claims: { ...u.claims }, disabled: u.disabled })
    }
    return dir
  }

  async findByUsername(username: string): Promise<User | null> {
    return this.#byName.get(username.toLowerCase()) ?? null
  }

  async findById(id: string): Promise<User | null> {
    return this.#byId.get(id) ?? null
  }
}

/**
 * Checks a username and password. Unknown user, disabled user and wrong
 * password are indistinguishable: the KDF runs in every case (DESIGN §3).
 */
export async function authenticateUser(users: UserDirectory, username: string, password: string): Promise<User | null> {
  const user = username.length <= 256 ? await users.findByUsername(username) : null
  const ok = await verifyPassword(user?.passwordHash ?? (await dummyHash()), password)
  if (!user || !ok || user.disabled) return null
  return user
}
