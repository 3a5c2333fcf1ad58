import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { startRedis, ManualClock } from '@gatehouse/test-harness'
import { addNextKey, keyPolicy } from '../../src/keys/key-lifecycle.js'
import { applyKeyChange, FileKeySetStore, KeySetCipher, RedisKeySetStore } from '../../src/keys/key-store.js'
import { keySetFromJwks, KeySetError, newKeySetDocument } from '../../src/keys/signing-keys.js'
import { signingKeySetKey } from '../../src/store/key-names.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'

const SECRET = 'k'.repeat(40)
const POLICY = keyPolicy({ jwksMaxAge: 300, keysReloadInterval: 10, keyRotationMargin: 60, keyRotationInterval: 0, accessTokenTtl: 900 })

const server = await startRedis()
t.teardown(() => server.stop())
const redis = createRedis({ url: server.url, commandTimeoutMs: 2000 })
await waitForRedis(redis)
t.teardown(() => redis.disconnect())

const prefix = (): string => `t${randomBytes(4).toString('hex')}:`

t.test('the file store writes with compare-and-set, atomically, mode 0600', async (t) => {
  const dir = t.testdir({})
  const path = `${dir}/keys.json`
  const store = new FileKeySetStore(path)
  t.equal(await store.read(), null, 'no file: no set')
  t.equal(await store.version(), null)
  const clock = new ManualClock()
  const doc = await newKeySetDocument(clock.now())
  const v1 = await store.write(doc, null)
  t.type(v1, 'string')
  t.equal(statSync(path).mode & 0o777, 0o600, 'private keys are readable by the owner only')
  t.equal(await store.write(doc, null), null, 'expected absent, but it exists: refused')
  t.equal(await store.write(doc, 'stale'), null, 'a stale version is refused')
  const got = await store.read()
  t.equal(got!.version, v1)
  t.same(got!.doc, doc)
  // someone edits the file by hand: its version changes
  writeFileSync(path, readFileSync(path, 'utf8') + ' ')
  t.not(await store.version(), v1)
  t.equal(await store.write(doc, v1!), null, 'a write based on the old content is refused')

  writeFileSync(`${path}.lock`, '')
  await t.rejects(store.write(doc, await store.version()), /another gatehouse command/)
  writeFileSync(path, '{nope')
  await t.rejects(store.read(), KeySetError)
})

t.test('the Redis store keeps the set encrypted, versioned, written with compare-and-set', async (t) => {
  const p = prefix()
  const store = new RedisKeySetStore({ redis, secret: SECRET, keyPrefix: p })
  t.equal(await store.version(), null)
  const doc = await newKeySetDocument(Date.now())
  const v1 = await store.write(doc, null)
  t.equal(v1, '1')
  t.equal(await store.write(doc, null), null, 'only the first seeder writes')
  t.equal(await store.write(doc, '7'), null)
  t.equal(await store.write(doc, '1'), '2')
  t.same((await store.read())!.doc, doc)

  const c = await server.client()
  t.teardown(() => c.close())
  const raw = String(await c.call('HGET', signingKeySetKey(p), 'blob'))
  t.match(raw, /^v1\.[A-Za-z0-9_-]+$/)
  t.notMatch(raw, /"d"|RSA|kid/, 'no key material in the clear')
  t.notMatch(Buffer.from(raw.slice(3), 'base64url').toString('latin1'), /"d"|"kty"/)

  const wrong = new RedisKeySetStore({ redis, secret: 'x'.repeat(40), keyPrefix: p })
  await t.rejects(wrong.read(), { message: /cannot decrypt.*SIGNING_KEYS_ENCRYPTION_SECRET/ })
  await c.call('HSET', signingKeySetKey(p), 'blob', 'v1.AAAA')
  await t.rejects(store.read(), { message: /malformed/ })
})

t.test('the cipher refuses tampering', async (t) => {
  const cipher = new KeySetCipher(SECRET)
  const blob = cipher.encrypt('{"keys":[]}')
  t.equal(cipher.decrypt(blob), '{"keys":[]}')
  t.not(cipher.encrypt('{"keys":[]}'), blob, 'a fresh IV each time')
  const raw = Buffer.from(blob.slice(3), 'base64url')
  raw[14] = raw[14]! ^ 1
  t.throws(() => cipher.decrypt(`v1.${raw.toString('base64url')}`), KeySetError)
  t.throws(() => new KeySetCipher('short'), /at least 32/)
})

t.test('the rotation lock is exclusive and released only by its holder', async (t) => {
  const p = prefix()
  const a = new RedisKeySetStore({ redis, secret: SECRET, keyPrefix: p })
  const b = new RedisKeySetStore({ redis, secret: SECRET, keyPrefix: p })
  const releaseA = await a.lock(10_000)
  t.ok(releaseA)
  t.equal(await b.lock(10_000), null, 'another replica does not get it')
  await releaseA!()
  const releaseB = await b.lock(10_000)
  t.ok(releaseB, 'free again once released')
  await releaseA!() // a late release by the former holder must not free B's lock
  t.equal(await a.lock(10_000), null)
  await releaseB!()
})

t.test('concurrent steps: one wins, the other decides again from the newer set', async (t) => {
  const p = prefix()
  const clock = new ManualClock()
  const store = new RedisKeySetStore({ redis, secret: SECRET, keyPrefix: p })
  await store.write(await newKeySetDocument(clock.now()), null)
  // Two CLIs add a next key at the same moment: both read version 1; exactly one is written,
  // the other re-reads, finds a next key waiting, and is refused.
  const results = await Promise.allSettled([
    applyKeyChange(store, clock.now, (set) => addNextKey(set, clock.now(), POLICY)),
    applyKeyChange(store, clock.now, (set) => addNextKey(set, clock.now(), POLICY)),
  ])
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'])
  t.match(results.find((r) => r.status === 'rejected'), { reason: { code: 'conflict' } })
  const set = await keySetFromJwks((await store.read())!.doc, clock.now())
  t.equal(set.keys.length, 2, 'exactly one key was added')
  t.equal(await store.version(), '2')
  await t.rejects(applyKeyChange(new RedisKeySetStore({ redis, secret: SECRET, keyPrefix: prefix() }), clock.now, () => null), /there is no key set/)
})
