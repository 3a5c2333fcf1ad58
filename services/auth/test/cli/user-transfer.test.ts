/**
 * `gatehouse users import|export` (DESIGN §10.2) and the email verbs (`users add --email`,
 * `users set-email`, `users list --search`, `clients list --search`), against a private Redis.
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { hash as bcryptHash } from '@node-rs/bcrypt'
import { startRedis } from '@gatehouse/test-harness'
import { passwordLogin, token } from '../helpers.js'
import { cliRunner, liveService } from './harness.js'

const source = await startRedis()
t.teardown(() => source.stop())
const target = await startRedis()
t.teardown(() => target.stop())
const admins = [await source.client(), await target.client()]
t.teardown(() => Promise.all(admins.map((a) => a.close())))

const ENV = { REDIS_URL: source.url, ACCESS_TOKEN_TTL: '600' }
const OTHER = { REDIS_URL: target.url, ACCESS_TOKEN_TTL: '600' }

t.beforeEach(async () => {
  for (const a of admins) await a.call('FLUSHALL')
})

const cli = cliRunner(ENV)
const cliOther = cliRunner(OTHER)

t.test('users add --email, set-email, show, list --search; sign in with the email', async (t) => {
  const added = await cli(['users', 'add', 'nina', '--email', 'Nina@Example.com', '--password-stdin', '--json'], { stdin: 'nina-password' })
  t.equal(added.code, 0, added.stderr)
  t.match(added.json().user, { username: 'nina', email: 'Nina@Example.com' })
  const dup = await cli(['users', 'add', 'other', '--email', 'NINA@example.com', '--password-stdin'], { stdin: 'other-password' })
  t.equal(dup.code, 1)
  t.match(dup.stderr, /or with the email "NINA@example.com" exists/)
  t.equal((await cli(['users', 'add', 'bad', '--email', 'no-at-sign', '--password-stdin'], { stdin: 'bad-password' })).code, 2)

  const show = await cli(['users', 'show', 'nina@example.com'])
  t.equal(show.code, 0, 'a user is found by email too')
  t.match(show.stdout, /email: Nina@Example.com/)

  await cli(['users', 'add', 'omar', '--password-stdin'], { stdin: 'omar-password' })
  const set = await cli(['users', 'set-email', 'omar', 'omar@corp.example', '--json'])
  t.equal(set.code, 0, set.stderr)
  t.match(set.json().user, { email: 'omar@corp.example' })
  t.match(set.events('admin.user_email_set'), [{ actor: 'test-operator', username: 'omar' }])
  const taken = await cli(['users', 'set-email', 'omar', 'nina@EXAMPLE.com'])
  t.equal(taken.code, 1)
  t.match(taken.stderr, /another user has the email/)
  t.equal((await cli(['users', 'set-email', 'omar'])).code, 2, 'an email or --clear')
  t.equal((await cli(['users', 'set-email', 'omar', 'x@example.com', '--clear'])).code, 2, 'not both')
  t.equal((await cli(['users', 'set-email', 'omar', 'not an email'])).code, 2)
  t.equal((await cli(['users', 'set-email', 'nobody', 'n@example.com'])).code, 1)

  const live = await liveService(t, ENV)
  t.equal((await passwordLogin(live.app, 'OMAR@corp.example', 'omar-password')).statusCode, 200, 'the running service signs in by the new email')
  const cleared = await cli(['users', 'set-email', 'omar', '--clear', '--json'])
  t.match(cleared.json().user, { email: null })
  t.equal((await passwordLogin(live.app, 'omar@corp.example', 'omar-password')).statusCode, 400, 'and no longer once it is removed')

  for (const n of ['pia', 'paul']) await cli(['users', 'add', n, '--email', `${n}@corp.example`, '--password-stdin'], { stdin: `${n}-password` })
  const search = await cli(['users', 'list', '--search', 'CORP.example', '--json'])
  t.same((search.json().users as { username: string }[]).map((u) => u.username).sort(), ['paul', 'pia'])
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const page = await cli(['users', 'list', '--search', 'CORP', '--limit', '1', '--json', ...(cursor ? ['--cursor', cursor] : [])])
    t.equal(page.code, 0)
    seen.push(...(page.json().users as { username: string }[]).map((u) => u.username))
    cursor = page.json().next_cursor as string | null
    pages++
  } while (cursor !== null && pages < 50)
  t.same(seen.sort(), ['paul', 'pia'], 'paged with --cursor, the same --search')
})

t.test('clients list --search: client_id or name, case-insensitively', async (t) => {
  for (const [id, name] of [['reporting', 'Reports'], ['billing', 'The REPORT mailer'], ['other', 'Other']] as const) {
    t.equal((await cli(['clients', 'add', id, '--name', name, '--grant-type', 'client_credentials', '--scope', 'internal:read'])).code, 0)
  }
  const found = await cli(['clients', 'list', '--search', 'report', '--json'])
  t.same((found.json().clients as { client_id: string }[]).map((c) => c.client_id).sort(), ['billing', 'reporting'])
  t.match((await cli(['clients', 'list', '--search', 'nothing-like-this'])).stdout, /no clients/)
})

t.test('users import: every accepted hash signs in; bad lines are reported by number and skipped; exit 1', async (t) => {
  const salt = randomBytes(16)
  const pbkdf2 = pbkdf2Sync('pbkdf2-password', salt, 1000, 32, 'sha256')
  const keycloak = { algorithm: 'pbkdf2-sha256', hashIterations: 27500, salt: 'Td6XuopYK6JNfUnIlqYMOQ==', value: 'ZXVC08Hf4jBOoYzVoNWYjQijsMC2oc/OUa9LciiIJ/1XHPF/qPiY1DqwLLDN2hYFmf/1kApkveD8/Pr7GVqjgw==' }
  const secretHash = '$pbkdf2-sha256$i=999999999,l=32$c2VjcmV0c2FsdHg$U0VDUkVUU0VDUkVUU0VDUkVUU0VDUkVUU0VDUkVUMTI'
  const lines = [
    JSON.stringify({ username: 'quinn', email: 'quinn@example.com', password_hash: await bcryptHash('bcrypt-password', { cost: 4 }), roles: ['admin'], claims: { name: 'Quinn' }, disabled: false }),
    JSON.stringify({ username: 'rosa', password_hash: `$pbkdf2-sha256$i=1000,l=32$${salt.toString('base64')}$${pbkdf2.toString('base64')}` }),
    '{"username": "broken", ', // 3: bad JSON
    JSON.stringify({ username: 'kc', email: 'kc@example.com', password_hash: keycloak }),
    '',
    JSON.stringify({ username: 'slow', password_hash: secretHash }), // 6: out of bounds
    JSON.stringify({ username: 'QUINN', password_hash: await bcryptHash('x', { cost: 4 }) }), // 7: exists
    JSON.stringify({ username: 'mail', email: 'not-an-email', password_hash: await bcryptHash('x', { cost: 4 }) }), // 8
    JSON.stringify({ username: 'unknown', password_hash: '$1$md5crypt$whatever' }), // 9
    JSON.stringify({ username: 'dupmail', email: 'QUINN@example.com', password_hash: await bcryptHash('x', { cost: 4 }) }), // 10
  ]
  const dir = t.testdir({})
  const file = `${dir}/users.jsonl`
  await writeFile(file, `${lines.join('\n')}\n`)

  const dry = await cli(['users', 'import', file, '--dry-run', '--json'])
  t.equal(dry.code, 1)
  // A dry run checks each line against the directory, not against earlier lines of the file (7 and
  // 10 repeat line 1's username and email), as `users import --help` says.
  t.match(dry.json(), { error: { code: 'partial' }, dry_run: true, imported: 5, skipped: 4 })
  t.same((dry.json().failures as { line: number }[]).map((f) => f.line), [3, 6, 8, 9])
  t.same((await admins[0]!.call('DBSIZE')) as number, 0, 'a dry run writes nothing')

  const run = await cli(['users', 'import', file])
  t.equal(run.code, 1, 'non-zero: some lines failed')
  t.match(run.stdout, /^imported 3, skipped 6\n/)
  const reported = run.stderr.split('\n').filter((l) => l.startsWith('line ')).map((l) => Number(/^line (\d+):/.exec(l)![1]))
  t.same(reported, [3, 6, 7, 8, 9, 10], 'each failed line by its number')
  t.match(run.stderr, /line 3: not valid JSON/)
  t.match(run.stderr, /line 6: password_hash: .*out of bounds/)
  t.match(run.stderr, /line 7: a user with this username, email or sub exists/)
  t.match(run.stderr, /line 9: password_hash: an unknown hash format/)
  t.notMatch(run.stderr + run.stdout, /\$2b\$|pbkdf2-sha256\$i|c2VjcmV0|U0VDUkVU|ZXVC08|md5crypt|broken/, 'no hash and no line content in any report')
  t.match(run.events('admin.users_imported'), [{ actor: 'test-operator', imported: 3, skipped: 6 }])

  const live = await liveService(t, ENV)
  t.equal((await passwordLogin(live.app, 'quinn@example.com', 'bcrypt-password')).statusCode, 200, 'bcrypt, by email')
  t.equal((await passwordLogin(live.app, 'rosa', 'pbkdf2-password')).statusCode, 200, 'PBKDF2')
  t.equal((await passwordLogin(live.app, 'kc', 'RdaRfqP7Y89vy2')).statusCode, 200, "Keycloak's credential")
  t.equal((await passwordLogin(live.app, 'slow', 'anything')).statusCode, 400)
  const shown = await cli(['users', 'show', 'quinn', '--json'])
  t.match(shown.json().user, { roles: ['admin'], claims: { name: 'Quinn' }, email: 'quinn@example.com' })
})

t.test('users import - reads standard input; a missing file is one clear error', async (t) => {
  const line = JSON.stringify({ username: 'sam', password_hash: await bcryptHash('sam-password', { cost: 4 }) })
  const r = await cli(['users', 'import', '-'], { stdin: `${line}\r\n` })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /imported 1, skipped 0/)
  const missing = await cli(['users', 'import', '/nonexistent/users.jsonl'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /cannot read \/nonexistent\/users.jsonl: ENOENT/)
})

t.test('export → import into another deployment: same users, same subjects, same passwords, refresh tokens name the same sub', async (t) => {
  await cli(['users', 'add', 'tara', '--email', 'tara@example.com', '--role', 'admin', '--claims', '{"name":"Tara"}', '--password-stdin'], { stdin: 'tara-password' })
  await cli(['users', 'add', 'uma', '--disabled', '--password-stdin'], { stdin: 'uma-password' })
  await cli(['users', 'import', '-'], { stdin: JSON.stringify({ username: 'vic', password_hash: await bcryptHash('vic-password', { cost: 4 }) }) })
  const exported = await cli(['users', 'export'])
  t.equal(exported.code, 0, exported.stderr)
  t.match(exported.stderr, /exported 3 user\(s\)/)
  t.match(exported.events('admin.users_exported'), [{ exported: 3 }])
  const lines = exported.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.equal(lines.length, 3)
  const tara = lines.find((l) => l.username === 'tara')!
  t.match(tara, { sub: /^u_/, email: 'tara@example.com', roles: ['admin'], claims: { name: 'Tara' }, disabled: false, password_hash: /^\$argon2id\$/ })
  t.match(lines.find((l) => l.username === 'vic'), { password_hash: /^\$2b\$/ }, 'a hash exported as stored')
  t.match(lines.find((l) => l.username === 'uma'), { disabled: true, email: null })

  const imported = await cliOther(['users', 'import', '-'], { stdin: exported.stdout })
  t.equal(imported.code, 0, imported.stderr)
  t.match(imported.stdout, /imported 3, skipped 0/)
  const again = await cliOther(['users', 'export'])
  const byName = (text: string) => Object.fromEntries(text.trim().split('\n').map((l) => JSON.parse(l) as { username: string }).map((u) => [u.username, u]))
  t.same(byName(again.stdout), byName(exported.stdout), 'the second deployment exports exactly what the first did')

  const live = await liveService(t, OTHER)
  const login = await passwordLogin(live.app, 'tara@example.com', 'tara-password')
  t.equal(login.statusCode, 200)
  const sub = (JSON.parse(Buffer.from((login.json().access_token as string).split('.')[1]!, 'base64url').toString()) as { sub: string }).sub
  t.equal(sub, tara.sub, 'the subject is kept')
  const refreshed = await token(live.app, { grant_type: 'refresh_token', refresh_token: login.json().refresh_token as string })
  t.equal(refreshed.statusCode, 200, 'a refresh finds the user by the kept subject')
  t.equal((await passwordLogin(live.app, 'uma', 'uma-password')).statusCode, 400, 'disabled stays disabled')

  const twice = await cliOther(['users', 'import', '-'], { stdin: exported.stdout })
  t.equal(twice.code, 1, 'importing the same users again skips every line')
  t.match(twice.stdout, /imported 0, skipped 3/)
})

t.test('users import/export --help tells the format', async (t) => {
  const help = await cli(['users', 'import', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /--dry-run/)
  t.match(help.stdout, /password_hash/)
  t.match((await cli(['users', '--help'])).stdout, /import/)
})
