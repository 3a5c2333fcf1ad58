/**
 * The signing-key gauges (runtime/metrics.ts) that the alert GatehouseSigningKeyNoSuccessor reads
 * (infra/observability/alerts.yml): keys by state, the active key's age, the rotation period. The
 * alert fires on `age > period` (automatic rotation) or `age > 80 days` (by hand) while no key is
 * `next`, so these values must follow a rotation step by step.
 */
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { loadConfig } from '../../src/config.js'
import { activateKey, addNextKey, keyPolicy, type KeyPolicy } from '../../src/keys/key-lifecycle.js'
import { generateRsaJwk, KeyRing, keySetFromJwks, newKeySetDocument, snapshot, type KeySetDocument, type LoadedKeySet } from '../../src/keys/signing-keys.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'
import { AuthMetrics, signingKeyFigures } from '../../src/runtime/metrics.js'

// publish delay 370 s, activation 10 s ahead, retire delay 970 s; automatic rotation every 30 days.
const DAY = 86_400
const POLICY: KeyPolicy = keyPolicy({ jwksMaxAge: 300, keysReloadInterval: 10, keyRotationMargin: 60, keyRotationInterval: 30 * DAY, accessTokenTtl: 900 })

async function reload(doc: KeySetDocument, clock: ManualClock): Promise<LoadedKeySet> {
  return await keySetFromJwks(JSON.parse(JSON.stringify(doc)), clock.now())
}

t.test('the figures follow a rotation: age from activation, a next key, then a retiring one', async (t) => {
  const clock = new ManualClock()
  const ring = new KeyRing(await keySetFromJwks(await newKeySetDocument(clock.now()), clock.now()), clock.now)
  t.same(signingKeyFigures(ring, clock.now(), POLICY), { byState: { next: 0, active: 1, retiring: 0 }, activeAgeSeconds: 0, rotationIntervalSeconds: 30 * DAY }, 'a fresh key: signing for 0 s')

  clock.advanceSeconds(29 * DAY + 7)
  t.equal(signingKeyFigures(ring, clock.now(), POLICY).activeAgeSeconds, 29 * DAY + 7, 'the age counts from the activation')

  const added = await addNextKey(ring.set as LoadedKeySet, clock.now(), POLICY, { jwk: generateRsaJwk() })
  ring.replace(await reload(added.doc, clock))
  t.same(signingKeyFigures(ring, clock.now(), POLICY).byState, { next: 1, active: 1, retiring: 0 }, 'a successor published: next 1')

  clock.advanceSeconds(POLICY.publishDelay)
  const activated = activateKey(ring.set as LoadedKeySet, added.events[0]!.kid, clock.now(), POLICY)
  ring.replace(await reload(activated.doc, clock))
  t.equal(signingKeyFigures(ring, clock.now(), POLICY).byState.next, 1, 'still next until its scheduled instant')
  clock.advanceSeconds(POLICY.activationDelay + 1)
  const after = signingKeyFigures(ring, clock.now(), POLICY)
  t.same(after.byState, { next: 0, active: 1, retiring: 1 }, 'the old key retiring, the new one active')
  t.ok(after.activeAgeSeconds >= 0 && after.activeAgeSeconds <= 2, `the new key's age starts again (${after.activeAgeSeconds} s)`)
})

t.test('a key active since before any schedule: its publication, else unknown (never a 56-year age)', async (t) => {
  const clock = new ManualClock()
  const jwk = generateRsaJwk()
  const plain = new KeyRing(await keySetFromJwks({ keys: [jwk] }, clock.now()), clock.now)
  t.equal(signingKeyFigures(plain, clock.now(), POLICY).activeAgeSeconds, -1, 'a plain JWK Set: -1, which no alert threshold passes')
  t.same(signingKeyFigures(plain, clock.now(), POLICY).byState, { next: 0, active: 1, retiring: 0 })

  const published = clock.now() / 1000 - 40 * DAY
  const legacy = new KeyRing(await keySetFromJwks({ keys: [{ ...jwk, kid: 'k1' }], gatehouse: { k1: { published_at: published, activate_at: 0 } } }, clock.now()), clock.now)
  t.equal(signingKeyFigures(legacy, clock.now(), POLICY).activeAgeSeconds, 40 * DAY, 'activate_at 0: counted from its publication')

  const set = plain.set as LoadedKeySet
  const unscheduled = new KeyRing(snapshot(set.active, set.keys), clock.now)
  t.same(signingKeyFigures(unscheduled, clock.now(), POLICY), { byState: { next: 0, active: 1, retiring: 0 }, activeAgeSeconds: -1, rotationIntervalSeconds: 30 * DAY }, 'a snapshot without a schedule')
})

t.test('the gauges are read at scrape time, under their fixed names', async (t) => {
  const metrics = new AuthMetrics({ defaultMetrics: false })
  let figures = { byState: { next: 0, active: 1, retiring: 2 }, activeAgeSeconds: 1234, rotationIntervalSeconds: 0 }
  metrics.watchSigningKeys(() => figures)
  const text = await metrics.registry.metrics()
  t.match(text, /^gatehouse_signing_keys\{state="next"\} 0$/m)
  t.match(text, /^gatehouse_signing_keys\{state="active"\} 1$/m)
  t.match(text, /^gatehouse_signing_keys\{state="retiring"\} 2$/m)
  t.match(text, /^gatehouse_signing_key_active_age_seconds 1234$/m)
  t.match(text, /^gatehouse_signing_key_rotation_interval_seconds 0$/m)
  figures = { ...figures, byState: { next: 1, active: 1, retiring: 0 }, activeAgeSeconds: 5 }
  const again = await metrics.registry.metrics()
  t.match(again, /^gatehouse_signing_keys\{state="next"\} 1$/m, 'a later scrape reads the set again')
  t.match(again, /^gatehouse_signing_key_active_age_seconds 5$/m)
})

t.test('the runtime registers them on the service registry', async (t) => {
  const clock = new ManualClock()
  const config = await loadConfig({ KEY_ROTATION_INTERVAL: '0' })
  const runtime = await createRuntime(config, { info() {}, warn() {} }, clock.now)
  t.teardown(() => runtime.close())
  const text = await runtime.deps.metrics.registry.metrics()
  t.match(text, /^gatehouse_signing_keys\{state="active"\} 1$/m, 'the generated development key is active')
  t.match(text, /^gatehouse_signing_key_active_age_seconds -1$/m, 'its age unknown')
  t.match(text, /^gatehouse_signing_key_rotation_interval_seconds 0$/m)
})
