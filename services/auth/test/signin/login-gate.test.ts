/**
 * Sign-in by username or email, and the re-hash of an imported or old hash at the next successful
 * sign-in (DESIGN §10.2), through both entrances of the login gate: the password grant at /token
 * and the login page (POST /login).
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { hash as bcryptHash } from '@node-rs/bcrypt'
import { s256 } from '../../src/authorize/pkce.js'
import { needsRehash } from '../../src/directory/password-hashes.js'
import type { UserDirectory } from '../../src/directory/users.js'
import { form, makeApp, passwordLogin, type TestApp } from '../helpers.js'
import { parseLoginForm, startOidcApp, type OidcApp } from '../oidc/harness.js'

async function addUser(users: UserDirectory, username: string, email: string, passwordHash: string): Promise<string> {
  const r = await users.add({ username, email, passwordHash, roles: ['user'] })
  if (r.status !== 'created') throw new Error('setup')
  return r.user.id
}

/** POST /login through the form of a fresh /authorize; the response (303 to the client on success). */
async function pageLogin(h: OidcApp, username: string, password: string) {
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: 'http://127.0.0.1:3000/callback', scope: 'openid',
    code_challenge: s256('dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk'), code_challenge_method: 'S256',
  })
  const page = await h.app.inject({ method: 'GET', url: `/authorize?${q}` })
  const cookies = Object.fromEntries(page.cookies.map((c) => [c.name, c.value]))
  return await h.app.inject({
    method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ ...parseLoginForm(page.body), username, password }), cookies,
  })
}

const subOf = (jwt: string): unknown => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub: unknown }).sub

t.test('password grant: sign in with the email (any case) as the username', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const id = await addUser(h.deps.users, 'gwen', 'Gwen@Example.com', await bcryptHash('gwen-password', { cost: 4 }))
  const res = await passwordLogin(h.app, 'gwen@EXAMPLE.com', 'gwen-password')
  t.equal(res.statusCode, 200)
  t.equal(subOf(res.json().access_token), id)
  const wrong = await passwordLogin(h.app, 'gwen@example.com', 'nope')
  t.same(wrong.json(), { error: 'invalid_grant', error_description: 'invalid username or password' })
  const unknown = await passwordLogin(h.app, 'nobody@example.com', 'nope')
  t.same(unknown.json(), wrong.json(), 'an unknown email answers as a wrong password')
})

t.test('the login page: sign in with the email', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  await addUser(h.deps.users, 'hugo', 'hugo@example.com', await bcryptHash('hugo-password', { cost: 4 }))
  const ok = await pageLogin(h, 'HUGO@example.com', 'hugo-password')
  t.equal(ok.statusCode, 303)
  t.ok(new URL(ok.headers.location as string).searchParams.get('code'), 'back to the client with a code')
  const bad = await pageLogin(h, 'hugo@example.com', 'wrong')
  t.equal(bad.statusCode, 400)
})

async function rehashedThroughToken(t: Test, h: TestApp, hash: string, label: string): Promise<void> {
  const name = `r${randomBytes(3).toString('hex')}`
  const id = await addUser(h.deps.users, name, `${name}@example.com`, hash)
  t.equal((await passwordLogin(h.app, name, 'wrong-password')).statusCode, 400)
  t.equal((await h.deps.users.findById(id))!.passwordHash, hash, `${label}: a failed sign-in changes nothing`)
  t.equal((await passwordLogin(h.app, name, 'the-password')).statusCode, 200)
  const after = (await h.deps.users.findById(id))!.passwordHash
  t.match(after, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, `${label}: re-hashed to the current argon2id`)
  t.equal(needsRehash(after), false)
  t.equal((await passwordLogin(h.app, `${name}@example.com`, 'the-password')).statusCode, 200, `${label}: the new hash signs in`)
  t.equal((await h.deps.users.findById(id))!.passwordHash, after, `${label}: and is not re-hashed again`)
}

t.test('password grant: an imported hash is re-hashed at the next successful sign-in', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const salt = randomBytes(16)
  await rehashedThroughToken(t, h, await bcryptHash('the-password', { cost: 4 }), 'bcrypt')
  const dk = pbkdf2Sync('the-password', salt, 1000, 32, 'sha256')
  await rehashedThroughToken(t, h, `$pbkdf2-sha256$i=1000,l=32$${salt.toString('base64')}$${dk.toString('base64')}`, 'pbkdf2')
  t.equal(h.logs.events('login.rehashed').length, 2)
})

t.test('the login page: an imported hash is re-hashed, and the session survives it', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const hash = await bcryptHash('the-password', { cost: 4 })
  const id = await addUser(h.deps.users, 'ines', 'ines@example.com', hash)
  const res = await pageLogin(h, 'ines', 'the-password')
  // POST /login looks at the user again after the session starts and ends it if the hash changed
  // meanwhile: the re-hash must not look like a password change.
  t.equal(res.statusCode, 303)
  t.ok(new URL(res.headers.location as string).searchParams.get('code'))
  t.equal(h.logs.events('login.superseded').length, 0)
  t.equal(needsRehash((await h.deps.users.findById(id))!.passwordHash), false)
})

t.test('a re-hash that fails never fails the sign-in; the old hash is kept', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const hash = await bcryptHash('the-password', { cost: 4 })
  const id = await addUser(h.deps.users, 'jack', 'jack@example.com', hash)
  const users = h.deps.users
  const setPassword = users.setPassword.bind(users)
  users.setPassword = async () => {
    throw new Error('store down')
  }
  t.teardown(() => (users.setPassword = setPassword))
  t.equal((await passwordLogin(h.app, 'jack', 'the-password')).statusCode, 200)
  users.setPassword = setPassword
  t.equal((await users.findById(id))!.passwordHash, hash)
  t.equal(h.logs.events('login.rehash_failed').length, 1)
  t.notMatch(h.logs.text, /the-password/, 'the password is never logged')
})

t.test('a password an administrator set meanwhile is never overwritten by the re-hash', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const id = await addUser(h.deps.users, 'kate', 'kate@example.com', await bcryptHash('old-password', { cost: 4 }))
  const users = h.deps.users
  const findByUsername = users.findByUsername.bind(users)
  let calls = 0
  // The admin's change lands between the check of the old password and the re-hash.
  users.findByUsername = async (name: string) => {
    if (++calls === 2) await users.setPassword(id, 'set-by-admin')
    return await findByUsername(name)
  }
  t.teardown(() => (users.findByUsername = findByUsername))
  await passwordLogin(h.app, 'kate', 'old-password')
  t.equal(calls, 2, 'the re-hash looked again')
  t.equal((await users.findById(id))!.passwordHash, 'set-by-admin', "the admin's password stands")
})

t.test("an account's username and email share one attempt bucket", async (t) => {
  const h = await makeApp({ LOGIN_MAX_ATTEMPTS: '4', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '100', LOGIN_DELAY_MS: '0' })
  t.teardown(h.close)
  await addUser(h.deps.users, 'lena', 'lena@example.com', await bcryptHash('lena-password', { cost: 4 }))
  for (const login of ['lena', 'LENA@example.com', 'lena', 'lena@example.com']) t.equal((await passwordLogin(h.app, login, 'wrong')).statusCode, 400)
  t.equal((await passwordLogin(h.app, 'lena', 'lena-password')).statusCode, 400, 'four failures under either name lock the account')
  t.equal((await passwordLogin(h.app, 'lena@example.com', 'lena-password')).statusCode, 400, 'under both names')
  t.ok(h.logs.events('login.locked').length >= 2)
})
