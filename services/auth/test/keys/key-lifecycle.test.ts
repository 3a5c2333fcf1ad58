import t from 'tap'
import {
  activateKey,
  addNextKey,
  describeKeys,
  dueRotationAction,
  dueRotationStep,
  KeyLifecycleError,
  keyPolicy,
  normalizedDocument,
  retireKey,
  type KeyPolicy,
} from '../../src/keys/key-lifecycle.js'
import { generateRsaJwk, KeyRing, keySetFromJwks, newKeySetDocument, type KeySetDocument, type LoadedKeySet } from '../../src/keys/signing-keys.js'
import { ManualClock } from '@gatehouse/test-harness'

// publish 300 + 10 + 60, activation 10 ahead, retire 900 + 10 + 60
const POLICY: KeyPolicy = keyPolicy({ jwksMaxAge: 300, keysReloadInterval: 10, keyRotationMargin: 60, keyRotationInterval: 0, accessTokenTtl: 900 })

const stateOf = (set: LoadedKeySet, ms: number, policy = POLICY) => Object.fromEntries(describeKeys(set, ms, policy).map((k) => [k.kid, k.state]))

async function fresh(clock: ManualClock): Promise<LoadedKeySet> {
  return await keySetFromJwks(await newKeySetDocument(clock.now()), clock.now())
}

async function reload(doc: KeySetDocument, clock: ManualClock): Promise<LoadedKeySet> {
  // What every replica does with what was written: parse it again.
  return await keySetFromJwks(JSON.parse(JSON.stringify(doc)), clock.now())
}

t.test('the policy comes from the configuration', async (t) => {
  t.same(POLICY, { publishDelay: 370, activationDelay: 10, retireDelay: 970, rotationInterval: 0 })
})

t.test('a manual rotation: add-next, activate when published long enough, retire when its tokens expired', async (t) => {
  const clock = new ManualClock()
  let set = await fresh(clock)
  const first = set.active.kid
  t.same(stateOf(set, clock.now()), { [first]: 'active' })

  clock.advanceSeconds(100)
  const added = await addNextKey(set, clock.now(), POLICY)
  const next = added.events[0]!.kid
  t.match(added.events, [{ event: 'keys.next_added', kid: next, activate_after: clock.now() / 1000 + 370 }])
  set = await reload(added.doc, clock)
  t.equal(set.active.kid, first, 'the new key does not sign yet')
  t.same(set.jwks.keys.map((k) => k.kid), [first, next], 'but it is published at once')
  t.same(stateOf(set, clock.now()), { [first]: 'active', [next]: 'next' })
  await t.rejects(addNextKey(set, clock.now(), POLICY), { code: 'conflict' }, 'one next key at a time')

  clock.advanceSeconds(369)
  t.throws(() => activateKey(set, next, clock.now(), POLICY), { code: 'too_early', message: /verifiers may not have it before/ })
  clock.advanceSeconds(1)
  const activated = activateKey(set, next, clock.now(), POLICY)
  const at = activated.events[0]!.activate_at as number
  t.equal(at, clock.now() / 1000 + 10, 'scheduled one reload interval ahead, so every replica has read it')
  t.match(activated.events[0], { replaces: first, forced: false })
  set = await reload(activated.doc, clock)

  const ring = new KeyRing(set, clock.now)
  const before = ring.current()
  t.equal(before.active.kid, first, 'still the old key until the instant')
  t.equal(ring.current(), before, 'snapshots are stable objects between changes')
  clock.advanceSeconds(9.999)
  t.equal(ring.current().active.kid, first)
  clock.advanceSeconds(0.001)
  t.equal(ring.current().active.kid, next, 'the ring switches at the instant, without a reload')
  t.equal(ring.current().etag, before.etag, 'the published set did not change')

  t.same(stateOf(set, clock.now()), { [first]: 'retiring', [next]: 'active' })
  t.throws(() => retireKey(set, next, clock.now(), POLICY), { code: 'conflict', message: /is the active key/ })
  clock.advanceSeconds(969)
  t.throws(() => retireKey(set, first, clock.now(), POLICY), { code: 'too_early', message: /may be valid until/ })
  clock.advanceSeconds(1)
  const retired = retireKey(set, first, clock.now(), POLICY)
  t.match(retired.events, [{ event: 'keys.retired', kid: first, state: 'retiring', forced: false }])
  set = await reload(retired.doc, clock)
  t.same(set.jwks.keys.map((k) => k.kid), [next])
  t.equal(set.active.kid, next)
})

t.test('emergencies: --force activates at once and retires at once', async (t) => {
  const clock = new ManualClock()
  let set = await fresh(clock)
  const old = set.active.kid
  set = await reload((await addNextKey(set, clock.now(), POLICY)).doc, clock)
  const next = set.keys.find((k) => k.kid !== old)!.kid
  clock.advanceSeconds(1)
  const forced = activateKey(set, next, clock.now(), POLICY, { force: true })
  t.match(forced.events[0], { forced: true })
  set = await reload(forced.doc, clock)
  t.equal(set.active.kid, next, 'signing with the new key now')
  const removed = retireKey(set, old, clock.now(), POLICY, { force: true })
  t.match(removed.events[0], { kid: old, forced: true })
  t.same((await reload(removed.doc, clock)).keys.map((k) => k.kid), [next])
})

t.test('a key that never signed may be retired at any time; the last key never', async (t) => {
  const clock = new ManualClock()
  let set = await fresh(clock)
  set = await reload((await addNextKey(set, clock.now(), POLICY, { schedule: true })).doc, clock)
  const next = set.keys[1]!.kid
  t.equal(stateOf(set, clock.now())[next], 'next')
  set = await reload(retireKey(set, next, clock.now(), POLICY).doc, clock)
  t.equal(set.keys.length, 1, 'the scheduled rotation is cancelled')
  t.throws(() => retireKey(set, set.active.kid, clock.now(), POLICY), { code: 'conflict' })
  t.throws(() => retireKey(set, 'nope', clock.now(), POLICY), KeyLifecycleError)
  t.throws(() => activateKey(set, set.active.kid, clock.now(), POLICY), { code: 'conflict', message: /already the active key/ })
})

t.test('a retiring key may be activated again at once (rollback)', async (t) => {
  const clock = new ManualClock()
  let set = await fresh(clock)
  const old = set.active.kid
  set = await reload((await addNextKey(set, clock.now(), POLICY, { schedule: true })).doc, clock)
  clock.advanceSeconds(400)
  t.not(new KeyRing(set, clock.now).current().active.kid, old, 'the scheduled key took over')
  const back = activateKey(set, old, clock.now(), POLICY)
  set = await reload(back.doc, clock)
  clock.advanceSeconds(10)
  t.equal(new KeyRing(set, clock.now).current().active.kid, old)
  t.equal(describeKeys(set, clock.now(), POLICY).find((k) => k.kid !== old)!.state, 'retiring')
})

t.test('automatic rotation: each key signs for the interval; expired keys are removed', async (t) => {
  const clock = new ManualClock()
  const policy: KeyPolicy = { ...POLICY, rotationInterval: 30 * 86400 }
  let set = await fresh(clock)
  const k1 = set.active.kid
  t.equal(dueRotationAction(set, clock.now(), policy), null, 'a new key is not rotated')
  clock.advanceSeconds(30 * 86400 - 371)
  t.equal(dueRotationAction(set, clock.now(), policy), null)
  clock.advanceSeconds(1)
  t.same(dueRotationAction(set, clock.now(), policy), { kind: 'add' }, 'due one publish delay before the interval ends')
  const step = (await dueRotationStep(set, clock.now(), policy))!
  t.match(step.events, [{ event: 'keys.next_added', activate_at: clock.now() / 1000 + 370 }])
  set = await reload(step.doc, clock)
  const k2 = set.keys[1]!.kid
  t.equal(dueRotationAction(set, clock.now(), policy), null, 'nothing more while the next key waits')
  clock.advanceSeconds(370)
  t.equal(new KeyRing(set, clock.now).current().active.kid, k2, 'k2 signs from exactly the interval')
  clock.advanceSeconds(969)
  t.equal(dueRotationAction(set, clock.now(), policy), null)
  clock.advanceSeconds(1)
  t.same(dueRotationAction(set, clock.now(), policy), { kind: 'retire', kid: k1 })
  set = await reload((await dueRotationStep(set, clock.now(), policy))!.doc, clock)
  t.same(set.keys.map((k) => k.kid), [k2])
  t.equal(dueRotationAction(set, clock.now(), policy), null)
  t.same(dueRotationAction(set, clock.now(), POLICY, { now: true }), { kind: 'add' }, '`now` starts one whatever the age')
})

t.test('automatic rotation activates a key added by hand once it may sign', async (t) => {
  const clock = new ManualClock()
  const policy: KeyPolicy = { ...POLICY, rotationInterval: 1000 }
  let set = await fresh(clock)
  set = await reload((await addNextKey(set, clock.now(), policy)).doc, clock)
  const manual = set.keys[1]!.kid
  clock.advanceSeconds(1000)
  t.same(dueRotationAction(set, clock.now(), policy), { kind: 'activate', kid: manual })
})

t.test('a plain JWK Set is still a key set; its metadata is made explicit when written', async (t) => {
  const clock = new ManualClock()
  const a = generateRsaJwk()
  const b = generateRsaJwk()
  const plain = await keySetFromJwks({ keys: [a, b], active: undefined }, clock.now())
  const [ka, kb] = plain.keys.map((k) => k.kid)
  t.same(stateOf(plain, clock.now()), { [ka!]: 'active', [kb!]: 'next' }, 'the first key signs, the others are published')
  const doc = normalizedDocument(plain, clock.now())
  t.same(doc.gatehouse, { [ka!]: { published_at: clock.now() / 1000, activate_at: 0 }, [kb!]: { published_at: clock.now() / 1000 } })
  t.equal(doc.keys[0]!.kid, ka, 'every JWK carries its kid')
  t.notOk('active' in doc, 'the schedule, not "active", decides from now on')
  const named = await keySetFromJwks({ keys: [a, b], active: kb }, clock.now())
  t.equal(named.active.kid, kb)
  t.equal(normalizedDocument(named, clock.now()).gatehouse![kb!]!.activate_at, 0)
})

t.test('metadata is validated', async (t) => {
  const clock = new ManualClock()
  const a = { ...generateRsaJwk(), kid: 'a' }
  const b = { ...generateRsaJwk(), kid: 'b' }
  const now = clock.now() / 1000
  const cases: [unknown, RegExp][] = [
    [{ keys: [a], gatehouse: [] }, /must be an object/],
    [{ keys: [a], gatehouse: { z: { published_at: 1 } } }, /kid z, which is not in the set/],
    [{ keys: [a], gatehouse: { a: { published_at: 'yesterday' } } }, /published_at must be seconds/],
    [{ keys: [a], gatehouse: { a: { published_at: 1, activate_at: -5 } } }, /activate_at must be seconds/],
    [{ keys: [a, b], gatehouse: { a: { published_at: 1, activate_at: 5 }, b: { published_at: 1, activate_at: 5 } } }, /same time/],
    [{ keys: [a], gatehouse: { a: { published_at: 1, activate_at: now + 60 } } }, /no key is active/],
  ]
  for (const [doc, re] of cases) await t.rejects(keySetFromJwks(doc, clock.now()), re)
  const ok = await keySetFromJwks({ keys: [a, b], gatehouse: { a: { published_at: 1, activate_at: 2 }, b: { published_at: 1, activate_at: now + 60 } } }, clock.now())
  t.equal(ok.active.kid, 'a')
  t.notMatch(ok.jwksBody, /"d"|"p"|"q"|"dp"|"dq"|"qi"|gatehouse/, 'only public members are published')
})
