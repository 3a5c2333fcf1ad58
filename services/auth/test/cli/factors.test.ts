/**
 * `gatehouse users factors` and `users remove-factor` (DESIGN §10.5) against the stores the
 * service itself uses: Redis without DATABASE_URL, PostgreSQL with it. The factors are enrolled
 * through the running service's own store (deps.factors), so the CLI and the service are seen to
 * share them; deleting a user removes them.
 */
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { MemoryFactorStore, newFactorId, type FactorStore, type PasskeyFactor, type RecoveryCodesFactor, type TotpFactor } from '../../src/mfa/factors.js'
import { PgFactorStore } from '../../src/mfa/pg-factors.js'
import { RedisFactorStore } from '../../src/mfa/redis-factors.js'
import { cliRunner, liveService, redisAndPostgres, type CliResult } from './harness.js'

const T0 = 1_800_000_000_000
const SECRETS = ['SEALED-TOTP-SECRET', 'PUBLIC-KEY-BYTES', 'CREDENTIAL-ID-BYTES']
const digest = (code: string): string => createHash('sha256').update(code).digest('base64url')

/** A TOTP, a passkey and a recovery set with 2 of 3 codes left, as the enrolment pages would store them. */
async function enrol(store: FactorStore, userId: string): Promise<{ totp: TotpFactor; passkey: PasskeyFactor; recovery: RecoveryCodesFactor }> {
  const totp: TotpFactor = { id: newFactorId(), userId, kind: 'totp', label: 'Phone app', createdAt: T0, lastUsedAt: T0 + 60_000, sealedSecret: SECRETS[0]!, lastStep: 60_000_002 }
  const passkey: PasskeyFactor = { id: `-${newFactorId()}`, userId, kind: 'passkey', label: 'YubiKey "blue"\n\u001b[31m', createdAt: T0 + 1000, publicKey: SECRETS[1]!, credentialId: `${SECRETS[2]}-${newFactorId()}`, counter: 4, transports: ['usb'] }
  const recovery: RecoveryCodesFactor = { id: newFactorId(), userId, kind: 'recovery', label: 'Recovery codes', createdAt: T0 + 2000, codeHashes: [digest('aaaa-bbbb'), digest('cccc-dddd'), digest('eeee-ffff')], total: 3 }
  for (const f of [totp, passkey, recovery]) t.equal(await store.add(f), 'added')
  t.equal(await store.useRecoveryCode(userId, digest('cccc-dddd'), T0 + 3000), 2)
  return { totp, passkey, recovery }
}

function noSecrets(t: Test, r: CliResult): void {
  for (const s of [...SECRETS, digest('aaaa-bbbb'), 'aaaa-bbbb']) t.notOk((r.stdout + r.stderr).includes(s), `never ${s.slice(0, 12)}… in the output or the audit lines`)
}

/** The whole operator story on one deployment's environment. */
async function operatorStory(t: Test, env: Record<string, string>): Promise<void> {
  const cli = cliRunner(env)
  const live = await liveService(t, env)
  const added = await cli(['users', 'add', 'fiona', '--password-stdin', '--json'], { stdin: 'fiona-password' })
  t.equal(added.code, 0, added.stderr)
  const userId = (added.json().user as { id: string }).id
  const f = await enrol(live.deps.factors, userId)

  // list: the human lines and --json; no secret, key, credential id or digest
  const human = await cli(['users', 'factors', 'FIONA'])
  t.equal(human.code, 0, human.stderr)
  const lines = human.stdout.trim().split('\n')
  t.equal(lines.length, 3, 'one line per factor, oldest first')
  t.match(lines[0], new RegExp(`^${f.totp.id} {2}totp {6}"Phone app" {2}created=2027-01-15T08:00:00.000Z {2}last_used=2027-01-15T08:01:00.000Z$`))
  t.match(lines[1], /^-\S+ {2}passkey {3}"YubiKey \\"blue\\"\\n\\u001b\[31m" {2}created=\S+ {2}last_used=never$/, 'the label quoted: no control character reaches the terminal')
  t.match(lines[2], /recovery .* left=2\/3$/)
  noSecrets(t, human)
  const json = await cli(['users', 'factors', userId, '--json'])
  t.same(json.json(), {
    user_id: userId,
    username: 'fiona',
    factors: [
      { id: f.totp.id, kind: 'totp', label: 'Phone app', created_at: new Date(T0).toISOString(), last_used_at: new Date(T0 + 60_000).toISOString() },
      { id: f.passkey.id, kind: 'passkey', label: f.passkey.label, created_at: new Date(T0 + 1000).toISOString(), last_used_at: null },
      { id: f.recovery.id, kind: 'recovery', label: 'Recovery codes', created_at: new Date(T0 + 2000).toISOString(), last_used_at: new Date(T0 + 3000).toISOString(), codes_left: 2, codes_total: 3 },
    ],
  })
  noSecrets(t, json)
  const missing = await cli(['users', 'factors', 'nobody'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no user "nobody"/)

  // remove-factor: usage, confirmation, an unknown id
  t.equal((await cli(['users', 'remove-factor', 'fiona', '--yes'])).code, 2, 'neither an id nor --all')
  t.match((await cli(['users', 'remove-factor', 'fiona', f.totp.id, '--all', '--yes'])).stderr, /not both/)
  const unconfirmed = await cli(['users', 'remove-factor', 'fiona', f.totp.id])
  t.equal(unconfirmed.code, 1)
  t.match(unconfirmed.stderr, /refusing without confirmation .*pass --yes/)
  t.equal((await live.deps.factors.list(userId)).length, 3, 'nothing removed without confirmation')
  const unknown = await cli(['users', 'remove-factor', 'fiona', 'not-a-factor', '--yes', '--json'])
  t.equal(unknown.code, 1)
  t.match(unknown.json(), { error: { code: 'not_found', message: 'fiona has no second factor "not-a-factor"' } })

  // remove-factor <id>: an id starting with -, audited with its kind and id; the service finds it no more
  const one = await cli(['users', 'remove-factor', 'fiona', f.passkey.id, '--yes', '--json'])
  t.equal(one.code, 0, one.stderr)
  t.match(one.json(), { user_id: userId, removed: [{ id: f.passkey.id, kind: 'passkey' }] })
  t.match(one.events('admin.factor_removed'), [{ actor: 'test-operator', source: 'gatehouse-cli', user_id: userId, username: 'fiona', factor_id: f.passkey.id, kind: 'passkey' }])
  noSecrets(t, one)
  t.equal(await live.deps.factors.findPasskey(f.passkey.credentialId), null, 'the service no longer finds the passkey')
  t.same(await live.deps.factors.usePasskey(f.passkey.credentialId, 5, T0), { status: 'not_found' })
  const afterDash = await cli(['users', 'remove-factor', 'fiona', '--yes', '--', f.passkey.id])
  t.equal(afterDash.code, 1, 'after --, the same id: already gone')

  // remove-factor --all: a lost phone
  const all = await cli(['users', 'remove-factor', 'fiona', '--all', '--yes'])
  t.equal(all.code, 0, all.stderr)
  t.equal(all.stdout, 'removed 2 second factor(s) of fiona\n')
  t.match(all.events('admin.factors_removed'), [{ user_id: userId, removed: 2, factors: [{ factor_id: f.totp.id, kind: 'totp' }, { factor_id: f.recovery.id, kind: 'recovery' }] }])
  t.same(await live.deps.factors.list(userId), [])
  t.equal(await live.deps.factors.useTotpStep(userId, f.totp.id, 70_000_000, T0), false, 'the removed TOTP accepts nothing')
  t.equal((await cli(['users', 'factors', 'fiona'])).stdout, 'fiona has no second factors\n')
  t.match((await cli(['users', 'remove-factor', 'fiona', '--all', '--yes'])).events('admin.factors_removed'), [{ removed: 0 }], 'nothing to remove is still the recorded act')

  // users delete: the factors go with the user
  const again = await enrol(live.deps.factors, userId)
  const deleted = await cli(['users', 'delete', 'fiona', '--yes', '--json'])
  t.equal(deleted.code, 0, deleted.stderr)
  t.same((deleted.json().removed_factors as string[]).sort(), [again.totp.id, again.passkey.id, again.recovery.id].sort())
  t.match(deleted.events('admin.user_deleted'), [{ user_id: userId, factors_removed: 3 }])
  t.same(await live.deps.factors.list(userId), [])
  t.equal(await live.deps.factors.findPasskey(again.passkey.credentialId), null)
}

t.test('Redis (no DATABASE_URL): the service keeps factors in Redis; the CLI lists and removes them there', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const env = { REDIS_URL: server.url, LOGIN_DELAY_MS: '0' }
  t.ok((await liveService(t, env)).deps.factors instanceof RedisFactorStore)
  await operatorStory(t, env)
  const admin = await server.client()
  t.teardown(() => admin.close())
  t.same(await admin.call('KEYS', 'gatehouse:factors:*'), [], 'no factor hash left behind')
  t.same(await admin.call('KEYS', 'gatehouse:passkey:*'), [], 'no passkey pointer left behind')
})

t.test('PostgreSQL (DATABASE_URL): the service keeps factors in the database; the CLI lists and removes them there', async (t) => {
  const { env } = await redisAndPostgres()
  t.ok((await liveService(t, env)).deps.factors instanceof PgFactorStore)
  await operatorStory(t, env)
})

t.test('neither: the service keeps factors in its memory', async (t) => {
  t.ok((await liveService(t, {})).deps.factors instanceof MemoryFactorStore)
})

t.test('--help of the factor commands tells what they show and record', async (t) => {
  const cli = cliRunner({})
  const list = await cli(['users', 'factors', '--help'])
  t.equal(list.code, 0)
  t.match(list.stdout, /^Usage: gatehouse users factors <user> \[options\]/)
  t.match(list.stdout, /Never shows a secret, key or code/)
  const remove = await cli(['users', 'remove-factor', '--help'])
  t.match(remove.stdout, /^Usage: gatehouse users remove-factor <user> \[factor-id\] \[options\]/)
  t.match(remove.stdout, /--all +remove every second factor of the user/)
  t.match(remove.stdout, /admin\.factor_removed .*admin\.factors_removed/s)
  t.match(remove.stdout, /-y, --yes/)
})
