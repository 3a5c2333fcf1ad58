/*
 * Over 300 lines: the administrative verbs are one class on purpose, so every change an operator
 * makes passes through its single audit call (#audit).
 */
import { hashClientSecret, newClientSecret, type Client, type ClientDirectory } from '../directory/clients.js'
import { parseAuthFileConfig, type ClientConfig, type GrantType, type ResourceConfig, type TokenEndpointAuthMethod } from '../directory/config-file.js'
import { endSessions, endUserSessions, type SessionEndDeps, type SessionEndReason } from '../logout/end-sessions.js'
import type { BackchannelLogout } from '../logout/backchannel.js'
import { hashPassword, passwordProblem, replacePassword } from '../directory/passwords.js'
import { isSessionId, type LoginSession, type LoginSessionStore } from '../signin/sessions.js'
import type { Family, FamilyStore, RevokeReason } from '../families/types.js'
import { emailProblem, roleProblem, usernameProblem, type ListQuery, type NewUser, type User, type UserDirectory, type UserPage } from '../directory/users.js'
import { audit, type AuditTrail } from '../audit/trail.js'
import type { Factor, FactorStore } from '../mfa/factors.js'

/**
 * The administrative verbs behind `gatehouse users|clients|sessions` (DESIGN §5, §8, §9): the same
 * directories and family store as the service, plus what an admin action implies — a password
 * change, disable or delete revokes the user's families and tells resource servers (DESIGN §6) —
 * and one audit event per action (a log line and the trail), identifiers only, never a secret.
 */
export interface AuditLog {
  info(obj: Record<string, unknown>, msg?: string): void
  error?(obj: Record<string, unknown>, msg?: string): void
}

export interface AdminDeps {
  users: UserDirectory
  clients: ClientDirectory
  /** Announces what it revokes to resource servers in the same step (DESIGN §6). */
  families: FamilyStore
  /** Login sessions: ended with the user's families (DESIGN §10.1). */
  sessions: LoginSessionStore
  /** Second factors (DESIGN §10.5): listed and removed by the operator, removed with their user. */
  factors: FactorStore
  /** ms since the epoch */
  clock: () => number
  /** seconds: how long a revoked family's access tokens could still live (ACCESS_TOKEN_TTL) */
  accessTokenTtl: number
  resources: readonly ResourceConfig[]
  log: AuditLog
  trail: AuditTrail
  /** Who acts (the operator's login), recorded in every audit line. */
  actor: string
  /** Told when an admin action ends login sessions (OIDC Back-Channel Logout; the CLI only enqueues). */
  backchannel: BackchannelLogout
}

/** What ending a user's sessions did: the login sessions ended and the families revoked. */
export interface UserSessionsEnded {
  sessions: LoginSession[]
  revoked: Family[]
}

export type AdminErrorCode = 'not_found' | 'exists' | 'invalid'

export class AdminError extends Error {
  constructor(
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message)
    this.name = 'AdminError'
  }
}

export interface NewUserInput {
  username: string
  email?: string | undefined
  password: string
  roles?: readonly string[]
  claims?: Record<string, unknown>
  disabled?: boolean
}

export interface NewClientInput {
  client_id: string
  client_name?: string
  token_endpoint_auth_method: TokenEndpointAuthMethod
  grant_types: GrantType[]
  scope: string
  audience?: string
  /** Further audiences it may ask for with `resource` (RFC 8707). */
  resources?: string[]
  redirect_uris?: string[]
  post_logout_redirect_uris?: string[]
  jwks?: { keys: Record<string, unknown>[] } | null
  backchannel_logout_uri?: string
  backchannel_logout_session_required?: boolean
  introspection?: boolean
  release_roles?: boolean
  require_pushed_authorization_requests?: boolean
  dpop_bound_access_tokens?: boolean
  /** DESIGN §10.5: every sign-in to it needs a second factor. */
  require_mfa?: boolean
  /** RFC 8693 (DESIGN §10.4): the audiences it may exchange users' tokens for. */
  token_exchange?: { audiences: string[] }
}

const SECRET_METHODS: ReadonlySet<TokenEndpointAuthMethod> = new Set(['client_secret_basic', 'client_secret_post'])
const USER_ID = /^u_[A-Za-z0-9_-]{22}$/

/** The password policy lives with the directory (directory/passwords.ts); re-exported for the CLI. */
export { passwordProblem }

export class Admin {
  constructor(private readonly d: AdminDeps) {}

  /** The one place every admin action is recorded: a log line and the audit trail. */
  #audit(event: `admin.${string}` | 'family.revoked', fields: Record<string, unknown>, msg: string): void {
    audit(this.d.log, this.d.trail, { event, actor: this.d.actor, ...fields }, msg)
  }

  /** A user by username, else by email (with an `@`), else by id (`u_...`). */
  async findUser(ref: string): Promise<User> {
    const user =
      (await this.d.users.findByUsername(ref)) ??
      (ref.includes('@') ? await this.d.users.findByEmail(ref) : null) ??
      (USER_ID.test(ref) ? await this.d.users.findById(ref) : null)
    if (user === null) throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    return user
  }

  async addUser(input: NewUserInput): Promise<User> {
    const problems = [
      usernameProblem(input.username),
      input.email === undefined ? null : emailProblem(input.email),
      passwordProblem(input.password),
      ...(input.roles ?? []).map(roleProblem),
    ].filter((p): p is string => p !== null)
    if (problems.length > 0) throw new AdminError('invalid', problems.join('; '))
    const passwordHash = await hashPassword(input.password)
    const added = await this.d.users.add({
      username: input.username,
      email: input.email,
      passwordHash,
      roles: [...new Set(input.roles ?? [])],
      claims: input.claims ?? {},
      disabled: input.disabled ?? false,
    })
    if (added.status === 'exists') {
      if (input.email === undefined) throw new AdminError('exists', `a user named ${JSON.stringify(input.username)} exists (usernames are case-insensitive)`)
      throw new AdminError('exists', `a user named ${JSON.stringify(input.username)} or with the email ${JSON.stringify(input.email)} exists (usernames and emails are case-insensitive)`)
    }
    this.#audit('admin.user_added', { user_id: added.user.id, username: added.user.username, roles: added.user.roles, disabled: added.user.disabled }, 'user added')
    return added.user
  }

  /**
   * Adds one user of an import (DESIGN §10.2): already checked (user-transfer.ts), its hash kept as
   * it is. `dryRun` only looks whether the username, email or subject is taken. Audited once per
   * import by importFinished, not per user (an import may hold a million).
   */
  async importUser(input: NewUser, dryRun: boolean): Promise<'imported' | 'exists'> {
    if (dryRun) {
      const taken =
        (await this.d.users.findByUsername(input.username)) !== null ||
        (input.email !== undefined && (await this.d.users.findByEmail(input.email)) !== null) ||
        (input.id !== undefined && (await this.d.users.findById(input.id)) !== null)
      return taken ? 'exists' : 'imported'
    }
    return (await this.d.users.add(input)).status === 'created' ? 'imported' : 'exists'
  }

  /** Whether importUsers adds a batch in one call (the directory has addMany) rather than a user at a time. */
  get bulkImport(): boolean {
    return this.d.users.addMany !== undefined
  }

  /**
   * Adds a batch of an import at once (addMany), with the outcome of each in input order, the same
   * as importUser one after the other would give; one user at a time where the directory has no
   * bulk verb.
   */
  async importUsers(inputs: readonly NewUser[]): Promise<('imported' | 'exists')[]> {
    if (this.d.users.addMany === undefined) {
      const out: ('imported' | 'exists')[] = []
      for (const input of inputs) out.push(await this.importUser(input, false))
      return out
    }
    return (await this.d.users.addMany(inputs)).map((r) => (r.status === 'created' ? 'imported' : 'exists'))
  }

  importFinished(summary: { file: string; imported: number; skipped: number; dryRun: boolean }): void {
    if (summary.dryRun) return
    this.#audit('admin.users_imported', { file: summary.file, imported: summary.imported, skipped: summary.skipped }, 'users imported')
  }

  exportFinished(summary: { exported: number }): void {
    this.#audit('admin.users_exported', { exported: summary.exported }, 'users exported (with their password hashes)')
  }

  async setEmail(ref: string, email: string | null): Promise<User> {
    const problem = email === null ? null : emailProblem(email)
    if (problem !== null) throw new AdminError('invalid', problem)
    const user = await this.findUser(ref)
    const r = await this.d.users.setEmail(user.id, email)
    if (r.status === 'not_found') throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    if (r.status === 'exists') throw new AdminError('exists', `another user has the email ${JSON.stringify(email)} (emails are case-insensitive)`)
    this.#audit('admin.user_email_set', { user_id: user.id, username: user.username, email_set: email !== null }, email === null ? 'email removed' : 'email changed')
    return r.user
  }

  async listUsers(query: ListQuery = {}): Promise<UserPage> {
    try {
      return await this.d.users.list(query)
    } catch (err) {
      if (err instanceof RangeError) throw new AdminError('invalid', `invalid cursor ${JSON.stringify(query.cursor)}`)
      throw err
    }
  }

  async disableUser(ref: string): Promise<{ user: User } & UserSessionsEnded> {
    const user = await this.findUser(ref)
    const updated = await this.d.users.setDisabled(user.id, true)
    if (updated === null) throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    const ended = await this.#endUser(user.id, 'user_disabled')
    this.#audit('admin.user_disabled', { user_id: user.id, username: user.username, sessions_ended: ended.sessions.length, families_revoked: ended.revoked.length }, 'user disabled')
    return { user: updated, ...ended }
  }

  async enableUser(ref: string): Promise<User> {
    const user = await this.findUser(ref)
    const updated = await this.d.users.setDisabled(user.id, false)
    if (updated === null) throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    this.#audit('admin.user_enabled', { user_id: user.id, username: user.username }, 'user enabled')
    return updated
  }

  async setPassword(ref: string, password: string): Promise<{ user: User } & UserSessionsEnded> {
    const problem = passwordProblem(password)
    if (problem !== null) throw new AdminError('invalid', problem)
    const user = await this.findUser(ref)
    const replaced = await replacePassword(this.d.users, user.id, password)
    const updated = 'user' in replaced ? replaced.user : null
    if (updated === null) throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    const ended = await this.#endUser(user.id, 'password_change')
    this.#audit('admin.user_password_set', { user_id: user.id, username: user.username, sessions_ended: ended.sessions.length, families_revoked: ended.revoked.length }, 'password changed')
    return { user: updated, ...ended }
  }

  async setRoles(ref: string, roles: readonly string[]): Promise<User> {
    const problems = roles.map(roleProblem).filter((p): p is string => p !== null)
    if (problems.length > 0) throw new AdminError('invalid', problems.join('; '))
    const user = await this.findUser(ref)
    const updated = await this.d.users.setRoles(user.id, [...new Set(roles)])
    if (updated === null) throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    // Tokens issued from now on (refreshes included) carry the new roles.
    this.#audit('admin.user_roles_set', { user_id: user.id, username: user.username, roles: updated.roles, previous_roles: user.roles }, 'roles changed')
    return updated
  }

  /**
   * Deletes the user, its second factors first (PostgreSQL would cascade; Redis and memory would
   * keep them for a user id that an import with `sub` could bring back), then ends its sessions.
   */
  async deleteUser(ref: string): Promise<{ user: User; factors: Factor[] } & UserSessionsEnded> {
    const user = await this.findUser(ref)
    const factors = await this.d.factors.removeAll(user.id)
    const removed = await this.d.users.delete(user.id)
    if (removed === null) throw new AdminError('not_found', `no user ${JSON.stringify(ref)}`)
    const ended = await this.#endUser(user.id, 'user_deleted')
    this.#audit('admin.user_deleted', { user_id: user.id, username: user.username, sessions_ended: ended.sessions.length, families_revoked: ended.revoked.length, factors_removed: factors.length }, 'user deleted')
    return { user: removed, factors, ...ended }
  }

  /** The user's second factors, oldest first (the CLI shows no secret, key or digest of them). */
  async listFactors(ref: string): Promise<{ user: User; factors: Factor[] }> {
    const user = await this.findUser(ref)
    return { user, factors: await this.d.factors.list(user.id) }
  }

  /** Removes one second factor of the user (a lost authenticator), audited with its kind and id. */
  async removeFactor(ref: string, factorId: string): Promise<{ user: User; factor: Factor }> {
    const user = await this.findUser(ref)
    const factor = await this.d.factors.remove(user.id, factorId)
    if (factor === null) throw new AdminError('not_found', `${user.username} has no second factor ${JSON.stringify(factorId)}`)
    this.#audit('admin.factor_removed', { user_id: user.id, username: user.username, factor_id: factor.id, kind: factor.kind }, 'second factor removed')
    return { user, factor }
  }

  /** Removes every second factor of the user (an operator resetting a lost phone): the password alone signs in again. */
  async removeAllFactors(ref: string): Promise<{ user: User; factors: Factor[] }> {
    const user = await this.findUser(ref)
    const factors = await this.d.factors.removeAll(user.id)
    this.#audit('admin.factors_removed', { user_id: user.id, username: user.username, removed: factors.length, factors: factors.map((f) => ({ factor_id: f.id, kind: f.kind })) }, 'every second factor removed')
    return { user, factors }
  }

  async addClient(input: NewClientInput): Promise<{ client: Client; secret: string | undefined }> {
    if (!/^[\x21-\x7e]{1,128}$/.test(input.client_id)) throw new AdminError('invalid', 'a client_id has 1 to 128 visible ASCII characters')
    const secret = SECRET_METHODS.has(input.token_endpoint_auth_method) ? newClientSecret() : undefined
    const doc: Record<string, unknown> = { ...input }
    if (secret !== undefined) doc.client_secret_hash = hashClientSecret(secret)
    // The same schema as the config file, so a client added here is one the file could declare.
    const { config, problems } = parseAuthFileConfig({ resources: this.d.resources, clients: [doc] }, 'client')
    const c: ClientConfig | undefined = config.clients[0]
    if (problems.length > 0 || c === undefined) throw new AdminError('invalid', problems.map((p) => p.replace(/^client: clients\[0\]\.?/, '')).join('; '))
    if (c.audience === '') throw new AdminError('invalid', 'an audience is required (the config file names no resource to default to)')
    const added = await this.d.clients.add(c)
    if (added.status === 'exists') throw new AdminError('exists', `a client ${JSON.stringify(input.client_id)} exists`)
    this.#audit('admin.client_added', { client_id: c.client_id, token_endpoint_auth_method: c.token_endpoint_auth_method, grant_types: c.grant_types }, 'client added')
    return { client: added.client, secret }
  }

  async listClients(query: ListQuery = {}) {
    try {
      return await this.d.clients.list(query)
    } catch (err) {
      if (err instanceof RangeError) throw new AdminError('invalid', `invalid cursor ${JSON.stringify(query.cursor)}`)
      throw err
    }
  }

  async findClient(clientId: string): Promise<Client> {
    const client = await this.d.clients.get(clientId)
    if (client === null) throw new AdminError('not_found', `no client ${JSON.stringify(clientId)}`)
    return client
  }

  /** A new secret, shown once; the old one stops working at once. */
  async rotateClientSecret(clientId: string): Promise<{ client: Client; secret: string }> {
    const client = await this.findClient(clientId)
    if (!SECRET_METHODS.has(client.authMethod)) throw new AdminError('invalid', `client ${clientId} authenticates with ${client.authMethod}, not a secret`)
    const secret = newClientSecret()
    const updated = await this.d.clients.rotateSecret(clientId, hashClientSecret(secret))
    if (updated === null) throw new AdminError('not_found', `no client ${JSON.stringify(clientId)}`)
    this.#audit('admin.client_secret_rotated', { client_id: clientId }, 'client secret rotated')
    return { client: updated, secret }
  }

  /**
   * Removes a client. Its refresh tokens die with it (refreshing needs client
   * authentication); its access tokens live until they expire.
   */
  async deleteClient(clientId: string): Promise<Client> {
    const removed = await this.d.clients.delete(clientId)
    if (removed === null) throw new AdminError('not_found', `no client ${JSON.stringify(clientId)}`)
    this.#audit('admin.client_deleted', { client_id: clientId }, 'client deleted')
    return removed
  }

  /** The user's login sessions (browsers) and refresh families (what each client holds). */
  async listSessions(userRef: string): Promise<{ user: User; sessions: LoginSession[]; families: Family[] }> {
    const user = await this.findUser(userRef)
    return { user, sessions: await this.d.sessions.listByUser(user.id), families: await this.d.families.listByUser(user.id) }
  }

  /** Sign out everywhere: every login session and every family of the user. */
  async revokeUserSessions(userRef: string): Promise<{ user: User } & UserSessionsEnded> {
    const user = await this.findUser(userRef)
    const ended = await this.#endUser(user.id, 'admin')
    this.#audit('admin.sessions_revoked', { user_id: user.id, username: user.username, sessions_ended: ended.sessions.length, families_revoked: ended.revoked.length }, 'sessions revoked')
    return { user, ...ended }
  }

  /** Ends one login session (a browser) and the families started from it. */
  async revokeSession(sessionId: string): Promise<{ session: LoginSession; revoked: Family[] }> {
    const live = isSessionId(sessionId) ? await this.d.sessions.get(sessionId) : null
    if (live === null) throw new AdminError('not_found', `no live session ${JSON.stringify(sessionId)}`)
    const { sessions, families } = await endSessions(this.#sessionEndDeps(), [sessionId], 'admin')
    const session = sessions[0] ?? live
    this.#audit('admin.session_revoked', { session_id: session.id, user_id: session.userId, families_revoked: families.length }, 'session revoked')
    return { session, revoked: families }
  }

  async revokeFamily(familyId: string): Promise<Family> {
    const valid = /^[A-Za-z0-9_-]{1,64}$/.test(familyId)
    const family = valid ? await this.d.families.revoke(familyId, 'admin') : null
    if (family === null) {
      // The store announces a family that was already revoked again (repairing an announcement a
      // resource service missed, issue 20); say so rather than only "not found".
      const known = valid ? await this.d.families.get(familyId) : null
      if (known?.revoked === true) {
        this.#audit('admin.family_reannounced', { family_id: known.id, user_id: known.userId, client_id: known.clientId }, 'revoked family announced again')
        throw new AdminError('not_found', `family ${JSON.stringify(familyId)} was already revoked; its revocation was announced again`)
      }
      throw new AdminError('not_found', `no live family ${JSON.stringify(familyId)}`)
    }
    await this.#published([family], 'admin')
    this.#audit('admin.family_revoked', { family_id: family.id, user_id: family.userId, client_id: family.clientId }, 'family revoked')
    return family
  }

  async #endUser(userId: string, reason: SessionEndReason): Promise<UserSessionsEnded> {
    const { sessions, families: revoked } = await endUserSessions(this.#sessionEndDeps(), userId, reason)
    return { sessions, revoked }
  }

  #sessionEndDeps(): SessionEndDeps {
    return {
      sessions: this.d.sessions,
      families: this.d.families,
      backchannel: this.d.backchannel,
      announce: (families, reason) => this.#published(families, reason),
      log: { info: (obj, msg) => this.d.log.info({ ...obj, actor: this.d.actor }, msg), error: (obj, msg) => (this.d.log.error ?? this.d.log.info)({ ...obj, actor: this.d.actor }, msg) },
      audit: this.d.trail, actor: this.d.actor,
    }
  }

  /**
   * DESIGN §6: the family store has already told resource servers, in the step that revoked
   * (issue 20); their access tokens live at most ACCESS_TOKEN_TTL more. Here: the audit line.
   */
  async #published(families: readonly Family[], reason: RevokeReason): Promise<void> {
    // The same audit event as the service's (family-revocation.ts), plus who acted.
    for (const f of families) this.#audit('family.revoked', { family_id: f.id, client_id: f.clientId, sub: f.userId, reason }, 'family revoked')
  }
}
