import t from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { RECENT_REVOCATIONS_KEY } from '@gatehouse/service-kit'
import { passwordLogin, token } from '../helpers.js'
import { cliRunner, liveService } from './harness.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

const ENV = { REDIS_URL: server.url, ACCESS_TOKEN_TTL: '600' }

t.beforeEach(async () => {
  await admin.call('FLUSHALL')
})

const cli = cliRunner(ENV)

t.test('users add: the password from stdin or a file, never echoed or logged; JSON output', async (t) => {
  const added = await cli(['users', 'add', 'Ivy', '--password-stdin', '--role', 'admin', '--role', 'auditor', '--claims', '{"name":"Ivy"}', '--json'], { stdin: 'ivy-password-1\n' })
  t.equal(added.code, 0, added.stderr)
  const user = added.json().user as Record<string, unknown>
  t.match(user, { id: /^u_/, username: 'Ivy', roles: ['admin', 'auditor'], claims: { name: 'Ivy' }, disabled: false })
  t.notOk('passwordHash' in user || 'password_hash' in user, 'no hash in the output')
  t.match(added.events('admin.user_added'), [{ actor: 'test-operator', user_id: user.id, username: 'Ivy', source: 'gatehouse-cli' }])
  t.notMatch(added.stdout + added.stderr, /ivy-password-1|argon2/)

  const dir = t.testdir({ pw: 'jack-password\n' })
  const fromFile = await cli(['users', 'add', 'jack', '--password-file', `${dir}/pw`])
  t.equal(fromFile.code, 0)
  t.match(fromFile.stdout, /^added jack {2}u_\S+ {2}roles=-\n$/)

  const live = await liveService(t, ENV)
  t.equal((await passwordLogin(live.app, 'IVY', 'ivy-password-1')).statusCode, 200, 'the running service knows the user at once')
  t.equal((await passwordLogin(live.app, 'jack', 'jack-password')).statusCode, 200, 'one trailing newline is dropped')
})

t.test('users add: bad input is refused with exit 2, a taken name with exit 1', async (t) => {
  t.equal((await cli(['users', 'add', 'kim', '--password-stdin'], { stdin: 'kim-password' })).code, 0)
  const dup = await cli(['users', 'add', 'KIM', '--password-stdin'], { stdin: 'kim-password' })
  t.equal(dup.code, 1)
  t.match(dup.stderr, /a user named "KIM" exists \(usernames are case-insensitive\)/)
  const cases: [string[], string | undefined, RegExp][] = [
    [['users', 'add', 'short', '--password-stdin'], 'abc', /at least 8 characters/],
    [['users', 'add', ' padded', '--password-stdin'], 'long-enough', /whitespace/],
    [['users', 'add', 'nopass'], undefined, /--password-stdin or --password-file/],
    [['users', 'add', 'x', '--password-stdin', '--password-file', 'f'], 'p', /one of --password-stdin, --password-file/],
    [['users', 'add', 'x', '--password-stdin', '--claims', '[1]'], 'long-enough', /--claims must be a JSON object/],
    [['users', 'add', 'x', '--password-stdin', '--role', 'has space'], 'long-enough', /invalid role/],
    [['users', 'add', '--password-stdin'], 'long-enough', /missing <username>/],
    [['users', 'add', 'a', 'b', '--password-stdin'], 'long-enough', /unexpected argument "b"/],
    [['users', 'add', 'a', '--frobnicate'], undefined, /unknown option --frobnicate/],
  ]
  for (const [argv, stdin, re] of cases) {
    const r = await cli(argv, stdin === undefined ? {} : { stdin })
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, re)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  }
  const json = await cli(['users', 'add', 'x', '--json'])
  t.match(json.json(), { error: { code: 'usage', message: /password/ } }, '--json errors are JSON too')
})

t.test('users list and show: every user, pages with a cursor; show by name or id', async (t) => {
  for (const n of ['ann', 'ben', 'cat', 'dan', 'eve']) await cli(['users', 'add', n, '--password-stdin'], { stdin: `${n}-password` })
  const all = await cli(['users', 'list', '--json'])
  t.same((all.json().users as { username: string }[]).map((u) => u.username).sort(), ['ann', 'ben', 'cat', 'dan', 'eve'])
  t.equal(all.json().next_cursor, null)
  const human = await cli(['users', 'list'])
  t.equal(human.stdout.trim().split('\n').length, 5)

  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const page = await cli(['users', 'list', '--limit', '2', '--json', ...(cursor ? ['--cursor', cursor] : [])])
    t.equal(page.code, 0)
    seen.push(...(page.json().users as { username: string }[]).map((u) => u.username))
    cursor = page.json().next_cursor as string | null
    pages++
  } while (cursor !== null && pages < 20)
  t.same(seen.sort(), ['ann', 'ben', 'cat', 'dan', 'eve'])
  t.equal((await cli(['users', 'list', '--limit', '0'])).code, 2)
  t.equal((await cli(['users', 'list', '--cursor', 'garbage'])).code, 2)

  const byName = await cli(['users', 'show', 'CAT', '--json'])
  const id = (byName.json().user as { id: string }).id
  t.match(byName.json(), { user: { username: 'cat' }, sessions: 0 })
  t.match((await cli(['users', 'show', id, '--json'])).json(), { user: { username: 'cat' } })
  const missing = await cli(['users', 'show', 'nobody'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no user "nobody"/)
})

t.test('users disable / enable / set-password / delete revoke the user\'s families and tell resource servers', async (t) => {
  const live = await liveService(t, ENV)
  const login = async (password = 'alice-password') => await passwordLogin(live.app, 'alice', password)
  const refresh = async (rt: string) => await token(live.app, { grant_type: 'refresh_token', refresh_token: rt })
  const revokedSids = async () => (await admin.call('ZRANGE', RECENT_REVOCATIONS_KEY, 0, -1)) as string[]

  // disable: logins and refreshes stop; the families are revoked and published
  const s1 = (await login()).json() as { refresh_token: string; access_token: string }
  const sid1 = JSON.parse(Buffer.from(s1.access_token.split('.')[1]!, 'base64url').toString()).sid as string
  const disabled = await cli(['users', 'disable', 'alice', '--json'])
  t.equal(disabled.code, 0)
  t.same(disabled.json().revoked_families, [sid1])
  t.match(disabled.events('admin.user_disabled'), [{ username: 'alice', families_revoked: 1 }])
  t.match(disabled.events('family.revoked'), [{ family_id: sid1, reason: 'user_disabled' }])
  t.ok((await revokedSids()).includes(sid1), 'the revocation is published (DESIGN §6)')
  t.equal((await refresh(s1.refresh_token)).statusCode, 400)
  t.equal((await login()).statusCode, 400, 'a disabled user cannot log in')

  t.equal((await cli(['users', 'enable', 'alice'])).code, 0)
  const s2 = (await login()).json() as { refresh_token: string }
  t.equal((await refresh(s2.refresh_token)).statusCode, 200)

  // set-password: the old password stops working, and so do the sessions
  const changed = await cli(['users', 'set-password', 'alice', '--password-stdin'], { stdin: 'a-brand-new-password' })
  t.equal(changed.code, 0, changed.stderr)
  t.match(changed.stdout, /0 login session\(s\) ended, 1 token family revoked/)
  t.match(changed.events('admin.user_password_set'), [{ families_revoked: 1 }])
  t.notMatch(changed.stderr, /a-brand-new-password/)
  t.equal((await login()).statusCode, 400)
  t.equal((await login('a-brand-new-password')).statusCode, 200)
  t.equal((await cli(['users', 'set-password', 'alice', '--password-stdin'], { stdin: 'short' })).code, 2)

  // set-roles: new tokens carry the new roles
  t.equal((await cli(['users', 'set-roles', 'alice', '--role', 'auditor'])).code, 0)
  const at = ((await login('a-brand-new-password')).json() as { access_token: string }).access_token
  t.same(JSON.parse(Buffer.from(at.split('.')[1]!, 'base64url').toString()).roles, ['auditor'])
  t.match((await cli(['users', 'set-roles', 'alice', '--none', '--json'])).json(), { user: { roles: [] } })
  t.equal((await cli(['users', 'set-roles', 'alice'])).code, 2)
  t.equal((await cli(['users', 'set-roles', 'alice', '--none', '--role', 'x'])).code, 2)

  // delete: refused without confirmation when there is no terminal; then gone, sessions revoked
  const refused = await cli(['users', 'delete', 'alice'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /refusing without confirmation.*pass --yes/)
  t.equal((await cli(['users', 'show', 'alice'])).code, 0, 'still there')
  const no = await cli(['users', 'delete', 'alice'], { tty: true, stdin: 'n\n' })
  t.equal(no.code, 1)
  t.match(no.stderr, /Delete user alice .*\[y\/N\].*aborted/s)
  const deleted = await cli(['users', 'delete', 'alice', '--yes', '--json'])
  t.equal(deleted.code, 0)
  t.equal((deleted.json().revoked_families as string[]).length, 2, 'both logins since the password change')
  t.match(deleted.events('admin.user_deleted'), [{ username: 'alice' }])
  t.equal((await login('a-brand-new-password')).statusCode, 400)
  t.equal((await cli(['users', 'delete', 'alice', '--yes'])).code, 1)

  // bob confirms on a terminal
  t.equal((await cli(['users', 'delete', 'bob'], { tty: true, stdin: 'y\n' })).code, 0)
})

t.test('the CLI reports an unreachable Redis and a missing configuration clearly', async (t) => {
  const down = await cli(['users', 'list'], { env: { REDIS_URL: 'redis://127.0.0.1:1' } })
  t.equal(down.code, 1)
  t.match(down.stderr, /cannot reach Redis/)
  const none = await cli(['users', 'list'], { env: { REDIS_URL: '' } })
  t.equal(none.code, 1)
  t.match(none.stderr, /REDIS_URL .* is not set/)
  const bad = await cli(['users', 'list'], { env: { ACCESS_TOKEN_TTL: 'soon' } })
  t.equal(bad.code, 1)
  t.match(bad.stderr, /ACCESS_TOKEN_TTL must be/)
})
