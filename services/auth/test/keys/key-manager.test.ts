import { writeFileSync } from 'node:fs'
import t from 'tap'
import { startRedis, ManualClock } from '@gatehouse/test-harness'
import { loadConfig } from '../../src/config.js'
import { activateKey, addNextKey, keyPolicy } from '../../src/keys/key-lifecycle.js'
import { openSigningKeys, type SigningKeys } from '../../src/keys/key-manager.js'
import { applyKeyChange, FileKeySetStore } from '../../src/keys/key-store.js'
import { generateRsaJwk, KeySetError } from '../../src/keys/signing-keys.js'
import { buildApp } from '../../src/app.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'

const server = await startRedis()
t.teardown(() => server.stop())
const admin = await server.client()
t.teardown(() => admin.close())

const SECRET = 's'.repeat(40)

class Log {
  readonly lines: Record<string, unknown>[] = []
  info = (obj: object): void => void this.lines.push({ level: 'info', ...obj })
  warn = (obj: object): void => void this.lines.push({ level: 'warn', ...obj })
  events(name: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.event === name)
  }
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: server.url,
    SIGNING_KEYS_STORE: 'redis',
    SIGNING_KEYS_ENCRYPTION_SECRET: SECRET,
    JWKS_MAX_AGE: '300',
    KEYS_RELOAD_INTERVAL: '10',
    KEY_ROTATION_MARGIN: '60',
    ACCESS_TOKEN_TTL: '900',
    ...extra,
  }
}

async function replicas(n: number, clock: ManualClock, extra: Record<string, string> = {}): Promise<{ keys: SigningKeys; log: Log }[]> {
  const config = await loadConfig(env(extra))
  return await Promise.all(
    Array.from({ length: n }, async () => {
      const log = new Log()
      const keys = await openSigningKeys(config, log, clock.now)
      return { keys, log }
    }),
  )
}

t.beforeEach(async () => {
  await admin.call('FLUSHALL')
})

t.test('the first replica seeds the Redis key set; every replica loads the same one', async (t) => {
  const clock = new ManualClock()
  const rs = await replicas(3, clock)
  t.teardown(() => Promise.all(rs.map((r) => r.keys.close())))
  t.equal(rs.flatMap((r) => r.log.events('keys.seeded')).length, 1, 'seeded once')
  t.equal(new Set(rs.map((r) => r.keys.ring.current().active.kid)).size, 1, 'they agree on the active key')
  t.equal(new Set(rs.map((r) => r.keys.ring.current().etag)).size, 1, 'and publish the same set')
})

t.test('a key set file seeds Redis, its metadata made explicit', async (t) => {
  const dir = t.testdir({})
  const jwk = { ...generateRsaJwk(), kid: 'from-file' }
  writeFileSync(`${dir}/keys.json`, JSON.stringify({ keys: [jwk] }))
  const clock = new ManualClock()
  const [r] = await replicas(1, clock, { SIGNING_KEYS_FILE: `${dir}/keys.json` })
  t.teardown(() => r!.keys.close())
  t.equal(r!.keys.ring.current().active.kid, 'from-file')
  t.match(r!.log.events('keys.seeded'), [{ source: `${dir}/keys.json`, kids: ['from-file'] }])
})

t.test('a wrong encryption secret or an unreachable Redis stops the start', async (t) => {
  const clock = new ManualClock()
  const [r] = await replicas(1, clock)
  await r!.keys.close()
  const config = await loadConfig(env({ SIGNING_KEYS_ENCRYPTION_SECRET: 'w'.repeat(40) }))
  await t.rejects(openSigningKeys(config, new Log(), clock.now), { name: 'KeySetError', message: /cannot decrypt/ })
  const down = await loadConfig(env({ REDIS_URL: 'redis://127.0.0.1:1' }))
  await t.rejects(openSigningKeys(down, new Log(), clock.now, 300), KeySetError)
})

t.test('a change made elsewhere (the CLI) reaches every replica on its next round', async (t) => {
  const clock = new ManualClock()
  const rs = await replicas(2, clock)
  t.teardown(() => Promise.all(rs.map((r) => r.keys.close())))
  const [a, b] = rs as [(typeof rs)[0], (typeof rs)[0]]
  const policy = keyPolicy(await loadConfig(env()))
  const before = a.keys.ring.current().etag
  const added = await applyKeyChange(a.keys.store!, clock.now, (set) => addNextKey(set, clock.now(), policy))
  const next = added!.events[0]!.kid
  for (const r of rs) await r.keys.manager!.tick()
  for (const r of rs) {
    t.same(r.keys.ring.current().jwks.keys.map((k) => k.kid).includes(next), true, 'published on every replica')
    t.not(r.keys.ring.current().etag, before, 'with a new ETag')
    t.match(r.log.events('keys.reloaded'), [{ kids: [String, next] }])
  }
  await b.keys.manager!.tick()
  t.equal(b.log.events('keys.reloaded').length, 1, 'an unchanged version is not reloaded')

  clock.advanceSeconds(370)
  await applyKeyChange(b.keys.store!, clock.now, (set) => activateKey(set, next, clock.now(), policy))
  for (const r of rs) await r.keys.manager!.tick()
  t.not(a.keys.ring.current().active.kid, next, 'not yet: the switch is scheduled a reload interval ahead')
  clock.advanceSeconds(10)
  t.same(rs.map((r) => r.keys.ring.current().active.kid), [next, next], 'both switch at the same instant')
  for (const r of rs) await r.keys.manager!.tick()
  t.match(a.log.events('keys.active_changed'), [{ kid: next }])
})

t.test('when the stored set disappears, a running replica writes its own back', async (t) => {
  const clock = new ManualClock()
  const rs = await replicas(2, clock)
  t.teardown(() => Promise.all(rs.map((r) => r.keys.close())))
  const etag = rs[0]!.keys.ring.current().etag
  await admin.call('FLUSHALL')
  await Promise.all(rs.map((r) => r.keys.manager!.tick()))
  t.equal(rs.flatMap((r) => r.log.events('keys.restored')).length, 1, 'one of them restores it')
  await Promise.all(rs.map((r) => r.keys.manager!.tick()))
  const [late] = await replicas(1, clock)
  t.teardown(() => late!.keys.close())
  t.equal(late!.log.events('keys.seeded').length, 0, 'a replica starting now does not seed a new key')
  t.equal(late!.keys.ring.current().etag, etag, 'it publishes the same set')
  t.same(rs.map((r) => r.keys.ring.current().etag), [etag, etag])
})

t.test('automatic rotation across replicas: exactly one performs each step, and a key is published long enough first', async (t) => {
  const clock = new ManualClock()
  const rs = await replicas(3, clock, { KEY_ROTATION_INTERVAL: '3600' })
  t.teardown(() => Promise.all(rs.map((r) => r.keys.close())))
  const first = rs[0]!.keys.ring.current().active.kid
  // When the LAST replica first published each kid, and when the FIRST one signed with it.
  const seenBy = new Map<string, number>()
  const published = new Map<string, number>()
  const signed = new Map<string, number>()
  const round = async (): Promise<void> => {
    await Promise.all(rs.map((r) => r.keys.manager!.tick()))
    for (const [i, r] of rs.entries()) {
      const snap = r.keys.ring.current()
      for (const k of snap.jwks.keys) {
        if (!seenBy.has(`${i}:${k.kid}`)) seenBy.set(`${i}:${k.kid}`, clock.now())
        published.set(k.kid, Math.max(...rs.map((_, j) => seenBy.get(`${j}:${k.kid}`) ?? Number.POSITIVE_INFINITY)))
      }
      if (!signed.has(snap.active.kid)) signed.set(snap.active.kid, clock.now())
    }
  }
  await round()
  const events = (name: string) => rs.flatMap((r) => r.log.events(name))
  // Rounds every 10 s (the reload interval) for two intervals and the retire delay.
  for (let s = 0; s < 2 * 3600 + 1000; s += 10) {
    clock.advanceSeconds(10)
    await round()
  }
  const added = events('keys.next_added')
  const retired = events('keys.retired')
  t.equal(added.length, 2, 'two rotations, each added by one replica only')
  t.equal(new Set(added.map((e) => e.kid)).size, 2)
  t.equal(retired.length, 2, 'each superseded key removed once')
  t.ok(retired.some((e) => e.kid === first), 'the first key among them')
  t.ok(added.every((e) => e.automatic === true))
  for (const e of added) {
    const kid = e.kid as string
    const lead = signed.get(kid)! - published.get(kid)!
    // Longer than a verifier may cache the set (JWKS_MAX_AGE 300), with the margin (60) to spare.
    t.ok(lead >= 360_000, `${kid.slice(0, 8)} was on every replica ${lead / 1000} s before any signed with it`)
  }
  t.equal(new Set(rs.map((r) => r.keys.ring.current().active.kid)).size, 1, 'they agree on the active key')
  t.equal(new Set(rs.map((r) => r.keys.ring.current().etag)).size, 1)
  t.equal(rs[0]!.keys.ring.current().keys.length, 1, 'only the current key is left')
  t.equal(events('keys.rotation_failed').length, 0)
})

t.test('a key file is re-read; a broken edit is ignored and the keys in use are kept', async (t) => {
  const dir = t.testdir({})
  const path = `${dir}/keys.json`
  writeFileSync(path, JSON.stringify({ keys: [generateRsaJwk()] }))
  const clock = new ManualClock()
  const config = await loadConfig({ SIGNING_KEYS_FILE: path, JWKS_MAX_AGE: '60' })
  const log = new Log()
  const keys = await openSigningKeys(config, log, clock.now)
  t.teardown(() => keys.close())
  const kid = keys.ring.current().active.kid
  const policy = keyPolicy(config)
  await applyKeyChange(new FileKeySetStore(path), clock.now, (set) => addNextKey(set, clock.now(), policy, { schedule: true }))
  await keys.manager!.tick()
  t.equal(keys.ring.current().keys.length, 2, 'the file change is picked up')
  writeFileSync(path, '{"keys": [')
  await keys.manager!.tick()
  t.match(log.events('keys.reload_failed'), [{ level: 'warn' }])
  t.equal(keys.ring.current().keys.length, 2, 'still serving the last good set')
  t.equal(keys.ring.current().active.kid, kid)
})

t.test('the running service reloads on its own timer and serves the new set with a new ETag', async (t) => {
  const clock = new ManualClock()
  const config = await loadConfig(env({ JWKS_MAX_AGE: '42', KEYS_RELOAD_INTERVAL: '1' }))
  const runtime = await createRuntime(config, { info() {}, warn() {} }, clock.now)
  const app = await buildApp(runtime.deps, { logStream: false })
  t.teardown(async () => {
    await app.close()
    await runtime.close()
  })
  const first = await app.inject('/jwks.json')
  t.equal(first.headers['cache-control'], 'public, max-age=42')
  const etag = first.headers.etag as string
  t.equal((await app.inject({ url: '/jwks.json', headers: { 'if-none-match': etag } })).statusCode, 304)
  const [other] = await replicas(1, clock)
  t.teardown(() => other!.keys.close())
  await applyKeyChange(other!.keys.store!, clock.now, (set) => addNextKey(set, clock.now(), keyPolicy(config)))
  // Waiting for the event (the replica's next round, every second), bounded.
  const deadline = Date.now() + 5000
  let after
  do {
    await new Promise((r) => setTimeout(r, 50))
    after = await app.inject({ url: '/jwks.json', headers: { 'if-none-match': etag } })
  } while (after.statusCode === 304 && Date.now() < deadline)
  t.equal(after.statusCode, 200, 'a new set, a new ETag')
  t.equal((after.json() as { keys: unknown[] }).keys.length, 2)
})
