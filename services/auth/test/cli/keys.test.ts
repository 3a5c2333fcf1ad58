import { readFileSync, statSync } from 'node:fs'
import type { JWK } from 'jose'
import t, { type Test } from 'tap'
import { startRedis, ManualClock } from '@gatehouse/test-harness'
import { loadKeySetFile } from '../../src/keys/signing-keys.js'
import { cliRunner } from './harness.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

// publish delay 60 + 5 + 0 = 65 s; activation 5 s ahead; retire 120 + 5 + 0 = 125 s
const POLICY_ENV = { JWKS_MAX_AGE: '60', KEYS_RELOAD_INTERVAL: '5', KEY_ROTATION_MARGIN: '0', ACCESS_TOKEN_TTL: '120' }

interface KeyJson {
  kid: string
  state: string
  activate_at: string | null
  activate_after: string | null
  remove_after: string | null
}
const keysOf = (r: { json(): Record<string, unknown> }): KeyJson[] => r.json().keys as KeyJson[]

t.test('keys generate writes a private key set (0600) that the service loads; never overwrites', async (t) => {
  const clock = new ManualClock()
  const cli = cliRunner({}, clock.now)
  const dir = t.testdir({})
  const out = `${dir}/keys.jwks.json`
  const r = await cli(['keys', 'generate', '--out', out, '--json'])
  t.equal(r.code, 0, r.stderr)
  t.equal(statSync(out).mode & 0o777, 0o600)
  const set = await loadKeySetFile(out, clock.now())
  t.same(r.json().kids, [set.active.kid])
  t.match(r.events('admin.keys_generated'), [{ kid: set.active.kid, file: out }])
  t.notMatch(r.stderr + r.stdout, /"d"/, 'no key material on the terminal')
  const again = await cli(['keys', 'generate', '--out', out])
  t.equal(again.code, 1)
  t.match(again.stderr, /exists \(pass --force/)
  t.equal((await cli(['keys', 'generate', '--out', out, '--force'])).code, 0)
  t.not((await loadKeySetFile(out)).active.kid, set.active.kid)
  t.equal((await cli(['keys', 'generate'])).code, 2, '--out is required')
  t.equal((await cli(['keys', 'generate', '--out', `${dir}/no/such/dir/k.json`])).code, 1)
})

/** The whole manual rotation, on a file or on the Redis store, with a clock the test moves. */
async function manualRotation(t: Test, env: Record<string, string>, target: string[], clock = new ManualClock()) {
  const cli = cliRunner({ ...POLICY_ENV, ...env }, clock.now)
  const initial = await cli(['keys', 'list', ...target, '--json'])
  t.equal(initial.code, 0, initial.stderr)
  const [first] = keysOf(initial)
  t.match(first, { state: 'active' })

  clock.advanceSeconds(10)
  const added = await cli(['keys', 'add-next', ...target, '--json'])
  t.equal(added.code, 0, added.stderr)
  const next = added.json().kid as string
  t.equal(added.json().activate_after, new Date(clock.now() + 65_000).toISOString())
  t.match(added.events('admin.key_added'), [{ kid: next, actor: 'test-operator' }])
  t.same(keysOf(added).map((k) => k.state), ['active', 'next'])
  t.equal((await cli(['keys', 'add-next', ...target])).code, 1, 'one next key at a time')

  clock.advanceSeconds(64)
  const early = await cli(['keys', 'activate', next, ...target])
  t.equal(early.code, 1)
  t.match(early.stderr, /verifiers may not have it before/)
  const forcedNoYes = await cli(['keys', 'activate', next, '--force', ...target])
  t.equal(forcedNoYes.code, 1, '--force asks for confirmation')
  t.match(forcedNoYes.stderr, /pass --yes/)
  clock.advanceSeconds(1)
  const activated = await cli(['keys', 'activate', next, ...target, '--json'])
  t.equal(activated.code, 0, activated.stderr)
  t.equal(activated.json().activate_at, new Date(clock.now() + 5000).toISOString())
  t.match(activated.events('admin.key_activated'), [{ kid: next, replaces: first!.kid }])

  clock.advanceSeconds(5)
  const listed = await cli(['keys', 'list', ...target, '--json'])
  t.same(keysOf(listed).map((k) => [k.kid, k.state]), [[first!.kid, 'retiring'], [next, 'active']])
  t.match(listed.stdout, /"remove_after": "/)
  t.equal((await cli(['keys', 'retire', next, '--yes', ...target])).code, 1, 'never the active key')
  const tooEarly = await cli(['keys', 'retire', first!.kid, '--yes', ...target])
  t.equal(tooEarly.code, 1)
  t.match(tooEarly.stderr, /may be valid until/)
  t.equal((await cli(['keys', 'retire', first!.kid, ...target])).code, 1, 'refused without --yes')
  clock.advanceSeconds(125)
  const retired = await cli(['keys', 'retire', first!.kid, '--yes', ...target, '--json'])
  t.equal(retired.code, 0, retired.stderr)
  t.same(keysOf(retired).map((k) => k.kid), [next])
  t.match(retired.events('admin.key_retired'), [{ kid: first!.kid, forced: false }])
  t.equal((await cli(['keys', 'retire', 'nope', '--yes', ...target])).code, 1)

  // keys rotate: nothing due, then --now starts a scheduled rotation, which completes by itself
  t.match((await cli(['keys', 'rotate', ...target])).stdout, /^nothing to do/)
  const rotated = await cli(['keys', 'rotate', '--now', ...target, '--json'])
  t.equal(rotated.code, 0, rotated.stderr)
  const third = (rotated.json().steps as { kid: string; event: string }[])[0]!
  t.match(third, { event: 'admin.key_added', activate_at: Math.floor(clock.now() / 1000) + 65 })
  clock.advanceSeconds(65 + 125)
  const cleaned = await cli(['keys', 'rotate', ...target, '--json'])
  t.match(cleaned.json().steps, [{ event: 'admin.key_retired', kid: next }])
  t.same(keysOf(cleaned).map((k) => [k.kid, k.state]), [[third.kid, 'active']])
}

/**
 * A private key whose RFC 7638 thumbprint starts with `-`, as one kid in 64 does: the CLI once
 * took such a kid for an unknown option, so the rotations below use it on purpose.
 */
const DASH_KEYS = readFileSync(new URL('./fixtures/dash-kid.jwks.json', import.meta.url), 'utf8')
const DASH_KID = '-Q_jFePNCJ6Z7e8qqy_uYYYqHIe8JPib_aEQzAcOm3A'

t.test('a manual rotation on a key file', async (t) => {
  const dir = t.testdir({ 'keys.json': DASH_KEYS })
  const file = `${dir}/keys.json`
  const clock = new ManualClock()
  t.equal((await loadKeySetFile(file)).active.kid, DASH_KID, 'the first key is the one whose kid starts with -')
  // the rotation retires it with `keys retire -Q_jF... --yes --file ...`
  await manualRotation(t, {}, ['--file', file], clock)
  t.equal(statSync(file).mode & 0o777, 0o600, 'still private after rewrites')
  t.match(JSON.parse(readFileSync(file, 'utf8')), { keys: [{ kid: String, d: String }], gatehouse: Object })
  // SIGNING_KEYS_FILE is the default target
  t.equal((await cliRunner({ SIGNING_KEYS_FILE: file })(['keys', 'list'])).code, 0)
})

t.test('a manual rotation on the Redis key set (what running replicas read)', async (t) => {
  await admin.call('FLUSHALL')
  const env = { REDIS_URL: server.url, SIGNING_KEYS_STORE: 'redis', SIGNING_KEYS_ENCRYPTION_SECRET: 'e'.repeat(40) }
  // Until the first replica starts and seeds it (a generated key, as without SIGNING_KEYS_FILE).
  const none = await cliRunner(env)(['keys', 'list'])
  t.equal(none.code, 1)
  t.match(none.stderr, /there is no key set at redis gatehouse:signing-keys/)
  const { openSigningKeys } = await import('../../src/keys/key-manager.js')
  const { loadConfig } = await import('../../src/config.js')
  const clock = new ManualClock()
  const seeded = await openSigningKeys(await loadConfig(env), { info() {}, warn() {} }, clock.now)
  await seeded.close()
  await manualRotation(t, env, [], clock)
})

t.test('keys commands need a key set to work on, and say which', async (t) => {
  const cli = cliRunner({})
  const r = await cli(['keys', 'list'])
  t.equal(r.code, 2)
  t.match(r.stderr, /pass --file, or set SIGNING_KEYS_STORE=redis or SIGNING_KEYS_FILE/)
  const dir = t.testdir({ 'bad.json': '{"keys": []}' })
  const bad = await cli(['keys', 'list', '--file', `${dir}/bad.json`])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /the key set is empty/)
  const missing = await cli(['keys', 'add-next', '--file', `${dir}/missing.json`])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /there is no key set at file/)
})

t.test('a kid that starts with - is an argument, before or after the options and after --', async (t) => {
  const clock = new ManualClock()
  const cli = cliRunner(POLICY_ENV, clock.now)
  const dir = t.testdir({})
  const file = `${dir}/keys.json`
  t.equal((await cli(['keys', 'generate', '--out', file])).code, 0)
  const { addNextKey, keyPolicy } = await import('../../src/keys/key-lifecycle.js')
  const { FileKeySetStore, applyKeyChange } = await import('../../src/keys/key-store.js')
  const { loadConfig } = await import('../../src/config.js')
  // The next key is the dash key, added as `keys add-next` would.
  const policy = keyPolicy(await loadConfig(POLICY_ENV))
  const dash = (JSON.parse(DASH_KEYS) as { keys: JWK[] }).keys[0]!
  t.ok(await applyKeyChange(new FileKeySetStore(file), clock.now, (set) => addNextKey(set, clock.now(), policy, { jwk: dash })))
  clock.advanceSeconds(65)

  const listed = await cli(['keys', 'list', '--file', file, '--json'])
  t.same(keysOf(listed).map((k) => [k.kid, k.state]).at(-1), [DASH_KID, 'next'])
  const first = await cli(['keys', 'activate', DASH_KID, '--file', file, '--json'])
  t.equal(first.code, 0, first.stderr)
  t.match(first.events('admin.key_activated'), [{ kid: DASH_KID }])
  clock.advanceSeconds(5)
  for (const argv of [['--yes', '--file', file, DASH_KID], ['--yes', '--file', file, '--', DASH_KID]]) {
    const retire = await cli(['keys', 'retire', ...argv])
    t.equal(retire.code, 1, 'refused by the key rules, not by the parser')
    t.match(retire.stderr, /is the active key/)
    t.notMatch(retire.stderr, /unknown option/)
  }
  // Real options are still options, and a mistyped one is still reported as one.
  const typo = await cli(['keys', 'activate', DASH_KID, '--fiel', file])
  t.equal(typo.code, 2)
  t.match(typo.stderr, /unknown option --fiel/)
  const dashValue = await cli(['keys', 'list', '--file', `-${file}`])
  t.equal(dashValue.code, 1, 'a string option takes a value that starts with -')
  t.match(dashValue.stderr, /no key set at file -\//)
})
