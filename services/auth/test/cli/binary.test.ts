/**
 * The `gatehouse` binary as an operator runs it (the built dist/cli/main.js, as `pnpm gatehouse`
 * and the container image do), against a private redis-server; plus --help for every command.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { runProcess, startRedis } from '@gatehouse/test-harness'
import { cliRunner } from './harness.js'

const BIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
const GROUPS: Record<string, string[]> = {
  keys: ['generate', 'list', 'add-next', 'activate', 'retire', 'rotate'],
  users: ['add', 'list', 'show', 'disable', 'enable', 'set-password', 'set-roles', 'factors', 'remove-factor', 'delete'],
  clients: ['add', 'list', 'show', 'rotate-secret', 'delete'],
  sessions: ['list', 'revoke'],
  audit: ['search', 'prune'],
  db: ['migrate'],
}

t.test('--help for the tool, every group and every command', async (t) => {
  const cli = cliRunner({})
  const top = await cli(['--help'])
  t.equal(top.code, 0)
  for (const g of Object.keys(GROUPS)) t.match(top.stdout, new RegExp(`\\n  ${g} +`))
  t.equal((await cli([])).code, 2, 'no command is a usage error (with the help)')
  for (const [group, commands] of Object.entries(GROUPS)) {
    const g = await cli([group, '--help'])
    t.equal(g.code, 0)
    for (const c of commands) t.match(g.stdout, new RegExp(`\\n  ${c} +`), `${group} lists ${c}`)
    for (const c of commands) {
      for (const flag of ['--help', '-h']) {
        const h = await cli([group, c, flag])
        t.equal(h.code, 0, `${group} ${c} ${flag}`)
        t.match(h.stdout, new RegExp(`^Usage: gatehouse ${group} ${c}\\b`))
        t.match(h.stdout, /--json/)
        t.match(h.stdout, /Examples:\n  \S/)
      }
    }
  }
  const unknown = await cli(['nope'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown group "nope"/)
})

t.test('the built binary: exit codes, JSON on stdout, audit lines on stderr', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const env = { REDIS_URL: redis.url, GATEHOUSE_ACTOR: 'ci' }
  const dir = t.testdir({})
  writeFileSync(`${dir}/pw`, 'binary-password\n')

  const help = await runProcess([BIN, '--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: gatehouse <group> <command>/)
  t.equal((await runProcess([BIN, 'users', 'frob'], env)).code, 2)

  const added = await runProcess([BIN, 'users', 'add', 'nina', '--password-file', `${dir}/pw`, '--role', 'admin', '--json'], env)
  t.equal(added.code, 0, added.stderr)
  t.match(JSON.parse(added.stdout), { user: { username: 'nina', roles: ['admin'] } })
  const audit = JSON.parse(added.stderr.trim().split('\n').pop()!) as Record<string, unknown>
  t.match(audit, { event: 'admin.user_added', actor: 'ci', username: 'nina' })
  t.notMatch(added.stdout + added.stderr, /binary-password/)

  const listed = await runProcess([BIN, 'users', 'list', '--json'], env)
  t.match(JSON.parse(listed.stdout), { users: [{ username: 'nina' }] })

  const client = await runProcess([BIN, 'clients', 'add', 'bin-svc', '--grant-type', 'client_credentials', '--scope', 'internal:read', '--json'], env)
  t.equal(client.code, 0, client.stderr)
  t.match(JSON.parse(client.stdout).client_secret, /^[A-Za-z0-9_-]{43}$/)

  // standard input is not a terminal here: a destructive command without --yes is refused
  const refused = await runProcess([BIN, 'users', 'delete', 'nina'], env)
  t.equal(refused.code, 1)
  t.match(refused.stderr, /pass --yes/)
  t.equal((await runProcess([BIN, 'users', 'delete', 'nina', '--yes'], env)).code, 0)
  const gone = await runProcess([BIN, 'users', 'show', 'nina', '--json'], env)
  t.equal(gone.code, 1)
  t.match(JSON.parse(gone.stdout), { error: { code: 'not_found' } })

  const keys = await runProcess([BIN, 'keys', 'generate', '--out', `${dir}/keys.json`], {})
  t.equal(keys.code, 0, keys.stderr)
  const list = await runProcess([BIN, 'keys', 'list', '--file', `${dir}/keys.json`, '--json'], {})
  t.match(JSON.parse(list.stdout), { keys: [{ state: 'active' }] })

  const down = await runProcess([BIN, 'users', 'list'], { REDIS_URL: 'redis://127.0.0.1:1' })
  t.equal(down.code, 1)
  t.match(down.stderr, /cannot reach Redis/)
  t.notMatch(down.stderr, /\n\s+at /, 'no stack trace')
})
