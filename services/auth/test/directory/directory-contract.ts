// Over 300 lines: the user and the client directory contracts share their fixtures and run
// together against memory, Redis and PostgreSQL (directory.test.ts, redis-, pg-directory.test.ts).
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { checkClientSecret, hashClientSecret, type ClientDirectory } from '../../src/directory/clients.js'
import type { ClientConfig } from '../../src/directory/config-file.js'
import { userIdFor, type User, type UserDirectory } from '../../src/directory/users.js'

/**
 * The UserDirectory and ClientDirectory conformance suites: the memory and
 * Redis implementations run exactly these. Password hashes are opaque strings
 * to a directory, so fake ones keep the suite fast.
 */
export type UserDirectoryFactory = () => Promise<UserDirectory>
export type ClientDirectoryFactory = () => Promise<ClientDirectory>

const name = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`

export function userDirectoryContract(t: Test, make: UserDirectoryFactory): void {
  t.test('add, then find by name (any case) and by id; copies, never the stored record', async (t) => {
    const dir = await make()
    const username = name('Alice')
    const added = await dir.add({ username, passwordHash: 'h1', roles: ['admin'], claims: { name: 'Alice' } })
    if (added.status !== 'created') throw new Error('not created')
    const { user } = added
    t.match(user.id, /^u_[A-Za-z0-9_-]{22}$/)
    t.match(user, { username, passwordHash: 'h1', roles: ['admin'], claims: { name: 'Alice' }, disabled: false })
    t.same(await dir.findByUsername(username.toUpperCase()), user, 'usernames are case-insensitive')
    t.same(await dir.findById(user.id), user)
    t.equal(await dir.findByUsername(name('nobody')), null)
    t.equal(await dir.findById('u_AAAAAAAAAAAAAAAAAAAAAA'), null)
    t.equal(await dir.findById(''), null)
    const found = (await dir.findById(user.id))!
    found.roles.push('root')
    found.claims.evil = true
    t.same((await dir.findById(user.id))!.roles, ['admin'], 'changing a returned user changes nothing')
  })

  t.test('usernames are unique case-insensitively, even when added concurrently', async (t) => {
    const dir = await make()
    const base = name('dave')
    const results = await Promise.all([base, base.toUpperCase(), `${base[0]!.toUpperCase()}${base.slice(1)}`].map((u) => dir.add({ username: u, passwordHash: 'h' })))
    t.equal(results.filter((r) => r.status === 'created').length, 1, 'exactly one of three')
    t.same(results.filter((r) => r.status === 'exists').length, 2)
    const winner = results.find((r) => r.status === 'created') as { user: User }
    t.same(await dir.findByUsername(base), winner.user)
  })

  t.test('a given id is kept (seeding) and a taken name is refused', async (t) => {
    const dir = await make()
    const username = name('seeded')
    const r = await dir.add({ username, passwordHash: 'h', id: userIdFor(username) })
    t.match(r, { status: 'created', user: { id: userIdFor(username) } })
    t.same(await dir.add({ username, passwordHash: 'other', id: userIdFor(username) }), { status: 'exists' })
    t.equal((await dir.findById(userIdFor(username)))!.passwordHash, 'h', 'the existing user is untouched')
    t.same(await dir.add({ username: name('other'), passwordHash: 'x', id: userIdFor(username) }), { status: 'exists' }, 'a given id held by another name')
    t.match(await dir.findById(userIdFor(username)), { username })
  })

  t.test('set-password, disable, enable, set-roles change only what they say', async (t) => {
    const dir = await make()
    const added = await dir.add({ username: name('erin'), passwordHash: 'old', roles: ['a'], claims: { email: 'e@x' } })
    const { id } = (added as { user: User }).user
    t.match(await dir.setPassword(id, 'new'), { id, passwordHash: 'new', roles: ['a'], disabled: false })
    t.match(await dir.setDisabled(id, true), { passwordHash: 'new', disabled: true })
    t.match(await dir.findById(id), { disabled: true })
    t.match(await dir.setDisabled(id, false), { disabled: false })
    t.same((await dir.setRoles(id, ['b', 'c']))!.roles, ['b', 'c'])
    t.same((await dir.findById(id))!.claims, { email: 'e@x' })
    for (const missing of ['u_AAAAAAAAAAAAAAAAAAAAAA', '']) {
      t.equal(await dir.setPassword(missing, 'x'), null)
      t.equal(await dir.setDisabled(missing, true), null)
      t.equal(await dir.setRoles(missing, []), null)
      t.equal(await dir.delete(missing), null)
    }
  })

  t.test('delete removes the user and frees the name; the id is never found again', async (t) => {
    const dir = await make()
    const username = name('frank')
    const { user } = (await dir.add({ username, passwordHash: 'h' })) as { user: User }
    t.match(await dir.delete(user.id), { id: user.id, username })
    t.equal(await dir.findById(user.id), null)
    t.equal(await dir.findByUsername(username), null)
    t.equal(await dir.delete(user.id), null, 'deleting twice finds nothing')
    const again = (await dir.add({ username, passwordHash: 'h2' })) as { status: string; user: User }
    t.equal(again.status, 'created', 'the name is free again')
    t.not(again.user.id, user.id, 'with a new subject: a sub is never reassigned (OIDC Core §2)')
    t.equal(await dir.findById(user.id), null)
    t.equal(await dir.setPassword(user.id, 'x'), null, 'the old id cannot reach the new user')
  })

  t.test('emails: found in any case, unique case-insensitively, even when added concurrently', async (t) => {
    const dir = await make()
    const email = `${name('Ivy')}@Example.com`
    const added = await dir.add({ username: name('ivy'), email, passwordHash: 'h' })
    if (added.status !== 'created') throw new Error('not created')
    t.equal(added.user.email, email, 'kept as given')
    t.same(await dir.findByEmail(email.toLowerCase()), added.user)
    t.same(await dir.findByEmail(email.toUpperCase()), added.user)
    t.equal(await dir.findByEmail(`${name('nobody')}@example.com`), null)
    t.equal(await dir.findByEmail(''), null)
    t.same(await dir.add({ username: name('other'), email: email.toUpperCase(), passwordHash: 'h' }), { status: 'exists' }, 'the email of another user')
    const plain = await dir.add({ username: name('noemail'), passwordHash: 'h' })
    t.equal((plain as { user: User }).user.email, undefined, 'an email is optional')

    const shared = `${name('race')}@example.com`
    const results = await Promise.all([0, 1, 2].map((i) => dir.add({ username: name(`racer${i}`), email: i === 1 ? shared.toUpperCase() : shared, passwordHash: 'h' })))
    t.equal(results.filter((r) => r.status === 'created').length, 1, 'exactly one of three')
    const winner = results.find((r) => r.status === 'created') as { user: User }
    t.same(await dir.findByEmail(shared), winner.user)

    // A refused add (its username is taken) leaves the email free.
    const taken = name('taken')
    await dir.add({ username: taken, passwordHash: 'h' })
    const freeEmail = `${name('free')}@example.com`
    t.same(await dir.add({ username: taken, email: freeEmail, passwordHash: 'h' }), { status: 'exists' })
    t.equal(await dir.findByEmail(freeEmail), null)
    t.equal((await dir.add({ username: name('later'), email: freeEmail, passwordHash: 'h' })).status, 'created', 'and another user may have it')
  })

  t.test('set-email: set, change, remove; the old email is freed; another user\'s is refused', async (t) => {
    const dir = await make()
    const a = ((await dir.add({ username: name('jo'), passwordHash: 'h', roles: ['r'] })) as { user: User }).user
    const b = ((await dir.add({ username: name('kim'), email: `${name('kim')}@example.com`, passwordHash: 'h' })) as { user: User }).user
    const first = `${name('jo')}@example.com`
    const set = await dir.setEmail(a.id, first)
    t.match(set, { status: 'updated', user: { id: a.id, email: first, roles: ['r'], passwordHash: 'h' } })
    t.match(await dir.findByEmail(first), { id: a.id })
    t.match(await dir.findById(a.id), { email: first })
    t.match(await dir.setEmail(a.id, first.toUpperCase()), { status: 'updated', user: { email: first.toUpperCase() } }, 'its own email in another case')
    t.match(await dir.findByEmail(first), { id: a.id })
    t.same(await dir.setEmail(a.id, b.email!.toUpperCase()), { status: 'exists' })
    t.match(await dir.findById(a.id), { email: first.toUpperCase() }, 'unchanged when refused')
    const second = `${name('jo2')}@example.com`
    t.match(await dir.setEmail(a.id, second), { status: 'updated' })
    t.equal(await dir.findByEmail(first), null, 'the old email finds nothing')
    t.match(await dir.setEmail(b.id, first), { status: 'updated' }, 'and another user may take it')
    t.match(await dir.findByEmail(first), { id: b.id })
    const cleared = await dir.setEmail(a.id, null)
    t.equal(cleared.status, 'updated')
    t.equal((cleared as { user: User }).user.email, undefined)
    t.equal(await dir.findByEmail(second), null)
    t.equal((await dir.findById(a.id))!.email, undefined)
    t.same(await dir.setEmail('u_AAAAAAAAAAAAAAAAAAAAAA', 'x@example.com'), { status: 'not_found' })
    t.same(await dir.setEmail('', null), { status: 'not_found' })
    t.equal(await dir.findByEmail('x@example.com'), null, 'a refused set-email reserves nothing')
  })

  t.test('delete frees the email', async (t) => {
    const dir = await make()
    const email = `${name('lee')}@example.com`
    const { user } = (await dir.add({ username: name('lee'), email, passwordHash: 'h' })) as { user: User }
    await dir.delete(user.id)
    t.equal(await dir.findByEmail(email), null)
    t.equal((await dir.add({ username: name('lee2'), email, passwordHash: 'h' })).status, 'created')
  })

  t.test('list --search: a case-insensitive substring of the username or the email, paged', async (t) => {
    const dir = await make()
    const tag = randomBytes(4).toString('hex')
    const byName = Array.from({ length: 7 }, (_, i) => `Find${tag}-${i}`)
    const byEmail = Array.from({ length: 6 }, (_, i) => name(`mail${i}`))
    for (const n of byName) await dir.add({ username: n, passwordHash: 'h' })
    for (const n of byEmail) await dir.add({ username: n, email: `${n}@FIND${tag}.example`, passwordHash: 'h' })
    for (let i = 0; i < 5; i++) await dir.add({ username: name(`noise${i}`), email: `${name('n')}@example.com`, passwordHash: 'h' })
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await dir.list({ cursor, limit: 3, search: `find${tag.toUpperCase()}` })
      seen.push(...page.users.map((u) => u.username))
      cursor = page.cursor ?? undefined
      pages++
    } while (cursor !== undefined && pages < 100)
    t.equal(new Set(seen).size, seen.length, 'no user twice')
    t.same(new Set(seen), new Set([...byName, ...byEmail]), 'exactly the matches')
    t.same((await dir.list({ search: `nothing-${tag}` })).users, [])
  })

  t.test('list pages through every user exactly once', async (t) => {
    const dir = await make()
    const before = await all(dir)
    const names = Array.from({ length: 23 }, (_, i) => name(`user${i}`))
    for (const n of names) await dir.add({ username: n, passwordHash: 'h' })
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await dir.list({ cursor, limit: 5 })
      seen.push(...page.users.map((u) => u.username))
      t.ok(page.users.every((u) => typeof u.id === 'string'))
      cursor = page.cursor ?? undefined
      pages++
    } while (cursor !== undefined && pages < 100)
    t.ok(pages > 1, 'more than one page')
    t.equal(new Set(seen).size, seen.length, 'no user twice')
    t.same(new Set(seen), new Set([...before, ...names]), 'every user once')
  })
}

async function all(dir: UserDirectory): Promise<string[]> {
  const out: string[] = []
  let cursor: string | undefined
  do {
    const page = await dir.list({ cursor, limit: 100 })
    out.push(...page.users.map((u) => u.username))
    cursor = page.cursor ?? undefined
  } while (cursor !== undefined)
  return out
}

function client(id: string, overrides: Partial<ClientConfig> = {}): ClientConfig {
  return {
    client_id: id,
    client_name: 'A client',
    token_endpoint_auth_method: 'client_secret_basic',
    client_secret: 'plain-secret',
    grant_types: ['client_credentials'],
    scope: 'internal:read documents:read',
    audience: 'api://resource',
    redirect_uris: [],
    post_logout_redirect_uris: [],
    jwks: null,
    ...overrides,
  }
}

export function clientDirectoryContract(t: Test, make: ClientDirectoryFactory): void {
  t.test('add, get; a plain secret is stored hashed and checks in constant time', async (t) => {
    const dir = await make()
    const id = name('svc')
    const r = await dir.add(client(id))
    t.equal(r.status, 'created')
    const c = (await dir.get(id))!
    t.match(c, { id, name: 'A client', authMethod: 'client_secret_basic', scopes: ['internal:read', 'documents:read'], audience: 'api://resource' })
    t.same([...c.grantTypes], ['client_credentials'])
    t.ok(checkClientSecret(c, 'plain-secret'))
    t.notOk(checkClientSecret(c, 'wrong'))
    t.equal(await dir.get(name('nobody')), null)
    t.same(await dir.add(client(id, { client_secret: 'other' })), { status: 'exists' })
    t.ok(checkClientSecret((await dir.get(id))!, 'plain-secret'), 'an existing client is untouched')
  })

  t.test('a public client has no secret; a browser client keeps its redirect URIs', async (t) => {
    const dir = await make()
    const id = name('spa')
    const { client_secret: _drop, ...rest } = client(id)
    await dir.add({ ...rest, token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], redirect_uris: ['https://app.example/cb'], post_logout_redirect_uris: ['https://app.example/'] })
    const c = (await dir.get(id))!
    t.equal(c.secretHash, undefined)
    t.notOk(checkClientSecret(c, ''))
    t.same(c.redirectUris, ['https://app.example/cb'])
    t.same(c.postLogoutRedirectUris, ['https://app.example/'])
  })

  t.test('require_pushed_authorization_requests (RFC 9126 §6) is kept; absent, it is false', async (t) => {
    const dir = await make()
    const base = { grant_types: ['authorization_code' as const], redirect_uris: ['https://app.example/cb'] }
    const [required, plain] = [name('par'), name('nopar')]
    await dir.add(client(required, { ...base, require_pushed_authorization_requests: true }))
    await dir.add(client(plain, base))
    t.equal((await dir.get(required))!.requirePushedAuthorizationRequests, true)
    t.equal((await dir.get(plain))!.requirePushedAuthorizationRequests, false)
  })

  t.test('require_mfa (DESIGN §10.5) is kept; absent, it is false', async (t) => {
    const dir = await make()
    const base = { grant_types: ['authorization_code' as const], redirect_uris: ['https://app.example/cb'] }
    const [required, plain] = [name('mfa'), name('nomfa')]
    await dir.add(client(required, { ...base, require_mfa: true }))
    await dir.add(client(plain, base))
    t.equal((await dir.get(required))!.requireMfa, true)
    t.equal((await dir.get(plain))!.requireMfa, false)
  })

  t.test('resources (RFC 8707) are kept as the client\'s further audiences; none is an empty list', async (t) => {
    const dir = await make()
    const id = name('dash')
    await dir.add(client(id, { resources: ['api://reports', 'urn:example:api'] }))
    t.match(await dir.get(id), { audience: 'api://resource', resources: ['api://reports', 'urn:example:api'] })
    t.same((await dir.list({ search: id })).clients[0]?.resources, ['api://reports', 'urn:example:api'], 'listed with them')
    const plain = name('plain')
    await dir.add(client(plain))
    t.same((await dir.get(plain))?.resources, [])
  })

  t.test('rotate-secret replaces the secret; the old one stops working at once', async (t) => {
    const dir = await make()
    const id = name('svc')
    await dir.add(client(id))
    const rotated = await dir.rotateSecret(id, hashClientSecret('new-secret'))
    t.ok(rotated && checkClientSecret(rotated, 'new-secret'))
    const c = (await dir.get(id))!
    t.ok(checkClientSecret(c, 'new-secret'))
    t.notOk(checkClientSecret(c, 'plain-secret'))
    t.equal(await dir.rotateSecret(name('nobody'), hashClientSecret('x')), null)
  })

  t.test('list --search: a case-insensitive substring of the client_id or the name', async (t) => {
    const dir = await make()
    const tag = randomBytes(4).toString('hex')
    const ids = [`Rep${tag}-a`, `rep${tag}-b`]
    for (const id of ids) await dir.add(client(id))
    await dir.add(client(name('named'), { client_name: `The REP${tag} app` }))
    await dir.add(client(name('other')))
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await dir.list({ cursor, limit: 1, search: `rep${tag}` })
      seen.push(...page.clients.map((c) => c.id))
      cursor = page.cursor ?? undefined
      pages++
    } while (cursor !== undefined && pages < 100)
    t.equal(seen.length, 3)
    t.ok(ids.every((id) => seen.includes(id)))
    t.equal(new Set(seen).size, 3)
  })

  t.test('delete removes it; list pages through every client exactly once', async (t) => {
    const dir = await make()
    const ids = Array.from({ length: 12 }, (_, i) => name(`c${i}`))
    for (const id of ids) await dir.add(client(id))
    t.match(await dir.delete(ids[0]!), { id: ids[0] })
    t.equal(await dir.get(ids[0]!), null)
    t.equal(await dir.delete(ids[0]!), null)
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await dir.list({ cursor, limit: 4 })
      seen.push(...page.clients.map((c) => c.id))
      cursor = page.cursor ?? undefined
      pages++
    } while (cursor !== undefined && pages < 100)
    t.ok(pages > 1)
    t.equal(new Set(seen).size, seen.length, 'no client twice')
    for (const id of ids.slice(1)) t.ok(seen.includes(id))
    t.notOk(seen.includes(ids[0]!))
  })
}
