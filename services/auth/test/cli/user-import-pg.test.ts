/**
 * `gatehouse users import` into PostgreSQL: users go in by batches (PgUserDirectory.addMany, one
 * INSERT per 500 lines), and every line's outcome is what one add after the other would give:
 * repeats inside a batch and rows already there are skipped, bad lines between good ones are
 * reported by their own numbers, in order, across batch boundaries.
 */
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { hash as bcryptHash } from '@node-rs/bcrypt'
import pgDriver from 'pg'
import { PgUserDirectory } from '../../src/directory/pg-directory.js'
import { passwordLogin } from '../helpers.js'
import { cliRunner, liveService, redisAndPostgres } from './harness.js'

const { url, env: ENV } = await redisAndPostgres()
const cli = cliRunner(ENV)
const hash = await bcryptHash('imported-password', { cost: 4 })
const line = (u: Record<string, unknown>): string => JSON.stringify({ password_hash: hash, ...u })

t.test('addMany: input order, repeats inside the batch and rows already there are exists, values are parameters', async (t) => {
  const pool = new pgDriver.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  const users = new PgUserDirectory({ pool })
  t.equal((await users.add({ username: 'Existing', email: 'taken@example.com', passwordHash: hash })).status, 'created')
  const r = await users.addMany([
    { username: 'a1', passwordHash: hash },
    { username: 'EXISTING', passwordHash: hash }, // a row already there, case-insensitively
    { username: 'a2', email: 'TAKEN@example.com', passwordHash: hash }, // its email is
    { username: 'A1', passwordHash: hash }, // repeats input 0
    { username: "a3'); DROP TABLE users; --", email: 'a3@example.com', passwordHash: hash, roles: ['x'], claims: { q: "'" } },
    { username: 'a4', email: 'A3@EXAMPLE.com', passwordHash: hash }, // repeats input 4's email
    { id: 'u_fixed', username: 'a5', passwordHash: hash },
    { id: 'u_fixed', username: 'a6', passwordHash: hash }, // repeats input 6's sub
  ])
  t.same(r.map((x) => x.status), ['created', 'exists', 'exists', 'exists', 'created', 'exists', 'created', 'exists'])
  t.match(r[4], { status: 'created', user: { username: "a3'); DROP TABLE users; --", email: 'a3@example.com', roles: ['x'], claims: { q: "'" } } })
  t.match(r[6], { status: 'created', user: { id: 'u_fixed', username: 'a5' } })
  t.same(await users.addMany([]), [])
  t.equal((await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM users')).rows[0]!.n, 4, 'the table is still there, with the four users')
})

t.test('users import: batches of 500, every line reported by its number, in order', async (t) => {
  const lines: string[] = []
  const expectedBad: number[] = []
  // 1,203 lines: three batches; bad lines and repeats spread over all of them.
  for (let i = 1; i <= 1203; i++) {
    if (i % 97 === 0) {
      lines.push('{not json')
      expectedBad.push(i)
    } else if (i % 101 === 0) {
      lines.push(line({ username: `user-${i - 100}` })) // repeats a line of an earlier batch (or this one)
      expectedBad.push(i)
    } else if (i === 7) {
      lines.push(line({ username: 'user-5' })) // repeats line 5, inside the first batch
      expectedBad.push(i)
    } else if (i === 600) {
      lines.push(line({ username: 'pre', email: 'pre@example.com' })) // exists before the import
      expectedBad.push(i)
    } else if (i === 900) {
      lines.push(line({ username: 'user-900', email: 'USER-3@example.com' })) // line 3's email
      expectedBad.push(i)
    } else {
      lines.push(line({ username: `user-${i}`, email: `user-${i}@example.com` }))
    }
  }
  lines.splice(10, 0, '') // a blank line is skipped silently (and counts as a line)
  const renumber = (n: number): number => (n > 10 ? n + 1 : n)
  const bad = expectedBad.map(renumber)
  t.equal((await cli(['users', 'add', 'pre', '--password-stdin'], { stdin: 'pre-password\n' })).code, 0)
  const file = `${t.testdir({})}/users.jsonl`
  await writeFile(file, `${lines.join('\n')}\n`)

  const dry = await cli(['users', 'import', file, '--dry-run', '--json'])
  t.equal(dry.code, 1)
  const unreadable = lines.filter((l) => l === '{not json').length
  t.match(dry.json(), { dry_run: true, skipped: unreadable + 1 }, 'a dry run looks at the directory only, a line at a time, as before')

  const run = await cli(['users', 'import', file])
  t.equal(run.code, 1)
  t.match(run.stdout, new RegExp(`^imported ${1203 - expectedBad.length}, skipped ${expectedBad.length}\\n`))
  const reported = run.stderr.split('\n').filter((l) => l.startsWith('line ')).map((l) => Number(/^line (\d+):/.exec(l)![1]))
  t.same(reported, bad, 'each failed line by its number, in file order')
  t.match(run.stderr, new RegExp(`line ${renumber(97)}: not valid JSON`))
  t.match(run.stderr, new RegExp(`line ${renumber(7)}: a user with this username, email or sub exists`))
  t.match(run.stderr, new RegExp(`line ${renumber(600)}: a user with this username, email or sub exists`))
  t.match(run.stderr, new RegExp(`line ${renumber(900)}: a user with this username, email or sub exists`))
  t.match(run.events('admin.users_imported'), [{ imported: 1203 - expectedBad.length, skipped: expectedBad.length }])

  const shown = await cli(['users', 'show', 'user-5', '--json'])
  t.match(shown.json().user, { email: 'user-5@example.com' }, 'the first of two lines with one username wins')
  const again = await cli(['users', 'import', file])
  t.match(again.stdout, /^imported 0, skipped 1203\n/, 'a second run finds every user there')
  const live = await liveService(t, ENV)
  t.equal((await passwordLogin(live.app, 'user-1202@example.com', 'imported-password')).statusCode, 200, 'a user of the last batch signs in')
})
