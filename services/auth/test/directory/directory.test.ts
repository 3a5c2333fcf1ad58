import t from 'tap'
import { MemoryClientDirectory } from '../../src/directory/clients.js'
import { hash as bcryptHash } from '@node-rs/bcrypt'
import { parseAuthFileConfig } from '../../src/directory/config-file.js'
import { verifyPassword } from '../../src/directory/passwords.js'
import { authenticateUser, canonicalEmail, emailProblem, MemoryUserDirectory, userIdFor, usernameProblem } from '../../src/directory/users.js'
import { clientDirectoryContract, userDirectoryContract } from './directory-contract.js'

t.test('memory user directory: contract', async (t) => {
  userDirectoryContract(t, async () => new MemoryUserDirectory())
})

t.test('memory client directory: contract', async (t) => {
  clientDirectoryContract(t, async () => new MemoryClientDirectory())
})

t.test('the config file seeds the memory directory with stable subjects', async (t) => {
  const dir = await MemoryUserDirectory.fromConfig([{ username: 'Zed', password: 'zed-password', roles: ['r'], claims: {}, disabled: false }])
  const zed = await authenticateUser(dir, 'zed', 'zed-password')
  t.equal(zed?.id, userIdFor('Zed'))
  t.equal(await authenticateUser(dir, 'zed', 'wrong'), null)
})

t.test('usernames are checked', async (t) => {
  t.equal(usernameProblem('alice@example.com'), null)
  t.match(usernameProblem(''), /1 to 256/)
  t.match(usernameProblem(' alice'), /whitespace/)
  t.match(usernameProblem('a\nb'), /control/)
  t.match(usernameProblem('x'.repeat(257)), /1 to 256/)
})

t.test('emails are checked: a sanity check, not RFC 5322', async (t) => {
  t.equal(emailProblem('a@b'), null)
  t.equal(emailProblem('Alice.Smith+tag@Example.COM'), null)
  t.equal(canonicalEmail('Alice@Example.COM'), 'alice@example.com')
  for (const bad of ['', 'ab', 'no-at-sign', '@example.com', 'alice@', 'a@b@c', 'a b@example.com', 'a\u0000@example.com', 'a\t@example.com', `${'x'.repeat(250)}@a.bc`]) {
    t.not(emailProblem(bad), null, JSON.stringify(bad))
  }
})

t.test('the config file: users[].email (checked, unique case-insensitively) and imported hash formats', async (t) => {
  const bcrypt = await bcryptHash('file-password', { cost: 4 })
  const ok = parseAuthFileConfig({ users: [
    { username: 'amy', password: 'amy-password', email: 'Amy@Example.com' },
    { username: 'bob', password_hash: bcrypt },
  ] }, 'f')
  t.same(ok.problems, [])
  t.equal(ok.config.users[0]!.email, 'Amy@Example.com')
  const dir = await MemoryUserDirectory.fromConfig(ok.config.users)
  t.match(await dir.findByEmail('amy@example.com'), { username: 'amy', id: userIdFor('amy') })
  t.ok(await authenticateUser(dir, 'bob', 'file-password'), 'a bcrypt hash in the file signs in')

  const secret = '$pbkdf2-sha256$i=999999999,l=32$c2FsdHNhbHQ$SECRETSECRETSECRETSECRETSECRETSECRETSECRETA'
  const bad = parseAuthFileConfig({ users: [
    { username: 'c1', password: 'p', email: 'not-an-email' },
    { username: 'c2', password: 'p', email: 'dup@example.com' },
    { username: 'c3', password: 'p', email: 'DUP@example.com' },
    { username: 'c4', password_hash: secret },
    { username: 'c5', password_hash: 'plain-text-password' },
  ] }, 'f')
  t.match(bad.problems, [/users\[0\]\.email is not acceptable/, /users\[2\]\.email duplicates DUP@example.com/, /users\[3\]\.password_hash is not acceptable: .*out of bounds/, /users\[4\]\.password_hash is not acceptable: an unknown hash format/])
  t.notMatch(bad.problems.join('\n'), /SECRET|plain-text-password/, 'a refused hash is never echoed')
})

t.test('sign-in by username or email: the KDF runs once in every case', async (t) => {
  const dir = await MemoryUserDirectory.fromConfig([
    { username: 'dora', password: 'dora-password', email: 'dora@example.com', roles: [], claims: {}, disabled: false },
    { username: 'eve@example.com', password: 'eve-password', roles: [], claims: {}, disabled: false },
    { username: 'fay', password: 'fay-password', email: 'x@example.com', roles: [], claims: {}, disabled: false },
  ])
  let runs = 0
  const counting = async (phc: string, pw: string): Promise<boolean> => {
    runs++
    return await verifyPassword(phc, pw)
  }
  const attempt = async (login: string, pw: string): Promise<string | undefined> => {
    runs = 0
    const u = await authenticateUser(dir, login, pw, counting)
    t.equal(runs, 1, `one KDF run for ${login}`)
    return u?.username
  }
  t.equal(await attempt('DORA@example.com', 'dora-password'), 'dora', 'by email, any case')
  t.equal(await attempt('dora', 'dora-password'), 'dora', 'by username')
  t.equal(await attempt('dora@example.com', 'wrong'), undefined)
  t.equal(await attempt('nobody@example.com', 'x'), undefined, 'an unknown email')
  t.equal(await attempt('nobody', 'x'), undefined, 'an unknown username')
  t.equal(await attempt('eve@example.com', 'eve-password'), 'eve@example.com', 'a username that looks like an email')
  // A username is looked up first: an email that is another user's username reaches that user.
  await dir.setEmail(userIdFor('fay'), 'eve@EXAMPLE.com')
  t.equal(await attempt('eve@example.com', 'fay-password'), undefined, 'the username wins over an email')
})
