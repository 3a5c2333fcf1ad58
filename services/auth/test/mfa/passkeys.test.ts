/**
 * mfa/passkeys.ts without a browser: the relying party from the issuer, the ceremony options,
 * enrolment and assertions answered by a software authenticator (software-authenticator.ts),
 * and each refusal (wrong origin, RP ID, challenge, type, flags, user handle, owner, a replayed
 * response, a counter that does not grow, malformed JSON) as a value, never an exception.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import type { AuthDeps } from '../../src/runtime/deps.js'
import type { User } from '../../src/directory/users.js'
import { MemoryReplayStore } from '../../src/directory/replay.js'
import { MemoryFactorStore, type PasskeyFactor } from '../../src/mfa/factors.js'
import {
  CEREMONY_TTL_MS,
  authenticationOptions,
  checkAssertion,
  enrolPasskey,
  parseAssertion,
  registrationOptions,
  relyingParty,
  verifySecondStepPasskey,
  type Ceremony,
  type RelyingParty,
} from '../../src/mfa/passkeys.js'
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server'
import { FLAG_BE, FLAG_BS, FLAG_UP, FLAG_UV, SoftwareAuthenticator } from './software-authenticator.js'

const ISSUER = 'http://localhost:4000'
const alice: User = { id: 'u_alice', username: 'alice', email: undefined, passwordHash: 'x', roles: [], claims: { name: 'Alice' }, disabled: false }
const bob: User = { ...alice, id: 'u_bob', username: 'bob', claims: {} }

function setup() {
  const clock = new ManualClock(1_800_000_000_000)
  const factors = new MemoryFactorStore()
  const deps = { config: { issuer: ISSUER }, clock: clock.now, assertionReplay: new MemoryReplayStore({ clock: clock.now }), factors } as unknown as AuthDeps
  const rp = relyingParty(deps.config)!
  return { clock, factors, deps, rp }
}

async function ceremony(clock: ManualClock): Promise<{ bytes: Uint8Array<ArrayBuffer>; c: Ceremony }> {
  const bytes = new Uint8Array(randomBytes(32))
  return { bytes, c: { challenge: Buffer.from(bytes).toString('base64url'), exp: clock.now() + CEREMONY_TTL_MS } }
}

/** alice enrols `auth` (a fresh ceremony); returns the stored passkey. */
async function enrol(s: ReturnType<typeof setup>, auth: SoftwareAuthenticator, user = alice): Promise<PasskeyFactor> {
  const { bytes, c } = await ceremony(s.clock)
  const options = JSON.parse(await registrationOptions(s.rp, user, [], bytes)) as { challenge: string; user: { id: string } }
  const enrolled = await enrolPasskey(s.deps, s.rp, user, auth.register(options), c, 'Passkey on test')
  if (!enrolled.ok) throw new Error(`enrolment refused: ${enrolled.reason}`)
  return enrolled.factor
}

async function login(s: ReturnType<typeof setup>, rp: RelyingParty = s.rp) {
  const { bytes, c } = await ceremony(s.clock)
  const options = JSON.parse(await authenticationOptions(rp, bytes)) as { challenge: string }
  return { options, c }
}

t.test('the relying party is the issuer, only on a host name in a secure context', async (t) => {
  t.same(relyingParty({ issuer: 'http://localhost:4000' }), { id: 'localhost', origin: 'http://localhost:4000', name: 'Gatehouse' })
  t.same(relyingParty({ issuer: 'https://login.example.com/gatehouse' }), { id: 'login.example.com', origin: 'https://login.example.com', name: 'Gatehouse' })
  t.equal(relyingParty({ issuer: 'http://auth.localhost:4000' })?.id, 'auth.localhost')
  t.equal(relyingParty({ issuer: 'http://127.0.0.1:4000' }), null, 'an IP address is not a valid RP ID')
  t.equal(relyingParty({ issuer: 'https://10.0.0.7' }), null)
  t.equal(relyingParty({ issuer: 'http://[::1]:4000' }), null)
  t.equal(relyingParty({ issuer: 'http://login.example.com' }), null, 'plain http beyond localhost is no secure context')
})

t.test('registration options: a discoverable credential, user verification, no attestation, three algorithms, the user\'s passkeys excluded', async (t) => {
  const s = setup()
  const held = await enrol(s, new SoftwareAuthenticator(s.rp.origin, s.rp.id))
  const bytes = new Uint8Array(randomBytes(32))
  const o = JSON.parse(await registrationOptions(s.rp, alice, [held], bytes)) as PublicKeyCredentialCreationOptionsJSON
  t.equal(o.challenge, Buffer.from(bytes).toString('base64url'))
  t.same(o.rp, { name: 'Gatehouse', id: 'localhost' })
  t.same(o.user, { id: Buffer.from('u_alice').toString('base64url'), name: 'alice', displayName: 'Alice' })
  t.same(o.authenticatorSelection, { residentKey: 'required', requireResidentKey: true, userVerification: 'required' })
  t.equal(o.attestation, 'none')
  t.same(o.pubKeyCredParams.map((p) => p.alg), [-7, -257, -8])
  t.same(o.excludeCredentials, [{ id: held.credentialId, type: 'public-key', transports: ['internal'] }])
  const a = JSON.parse(await authenticationOptions(s.rp, bytes)) as PublicKeyCredentialRequestOptionsJSON
  t.equal(a.rpId, 'localhost')
  t.equal(a.userVerification, 'required')
  t.notOk(a.allowCredentials?.length, 'username-less: no allowCredentials')
  const step = JSON.parse(await authenticationOptions(s.rp, bytes, [held])) as PublicKeyCredentialRequestOptionsJSON
  t.same(step.allowCredentials?.map((c) => c.id), [held.credentialId], 'a second step: the user\'s own')
})

t.test('enrolment stores the key, never twice; a replayed or bent registration is refused', async (t) => {
  const s = setup()
  const auth = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  const { bytes, c } = await ceremony(s.clock)
  const options = JSON.parse(await registrationOptions(s.rp, alice, [], bytes)) as { challenge: string; user: { id: string } }
  const response = auth.register(options)
  const first = await enrolPasskey(s.deps, s.rp, alice, response, c, 'Passkey on Chrome on Linux')
  t.ok(first.ok)
  const factor = (first as { factor: PasskeyFactor }).factor
  t.match(factor, { kind: 'passkey', userId: 'u_alice', label: 'Passkey on Chrome on Linux', credentialId: auth.id, counter: 0, transports: ['internal'] })
  t.same((await s.factors.list('u_alice')).map((f) => f.id), [factor.id])
  t.same(await enrolPasskey(s.deps, s.rp, alice, response, c, 'again'), { ok: false, reason: 'replayed' }, 'the same response again: the challenge is spent')
  const again = await ceremony(s.clock)
  const o2 = JSON.parse(await registrationOptions(s.rp, bob, [], again.bytes)) as { challenge: string; user: { id: string } }
  t.same(await enrolPasskey(s.deps, s.rp, bob, auth.register(o2), again.c, 'x'), { ok: false, reason: 'exists' }, 'a credential id already registered')

  for (const [what, bend] of [
    ['another site\'s origin', { origin: 'https://evil.example' }],
    ['another RP ID', { rpId: 'evil.example' }],
    ['no user verification', { flags: FLAG_UP }],
    ['an assertion\'s type', { type: 'webauthn.get' }],
    ['another challenge', { challenge: randomBytes(32).toString('base64url') }],
  ] as const) {
    const k = await ceremony(s.clock)
    const o = JSON.parse(await registrationOptions(s.rp, alice, [], k.bytes)) as { challenge: string; user: { id: string } }
    t.same(await enrolPasskey(s.deps, s.rp, alice, new SoftwareAuthenticator(s.rp.origin, s.rp.id).register(o, bend), k.c, 'x'), { ok: false, reason: 'wrong' }, what)
  }
  t.equal((await s.factors.list('u_alice')).length, 1, 'nothing else stored')
})

t.test('an assertion signs alice in once; replays, clones and bent assertions are refused', async (t) => {
  const s = setup()
  const auth = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  const factor = await enrol(s, auth)

  const { options, c } = await login(s)
  const response = auth.assert(options)
  const ok = await checkAssertion(s.deps, s.rp, response, c)
  t.match(ok, { ok: true, backedUp: false, factor: { id: factor.id, userId: 'u_alice', counter: 1 } })
  t.match(await checkAssertion(s.deps, s.rp, response, c), { ok: false, reason: 'replayed', factorId: factor.id, userId: 'u_alice' }, 'the same response again')

  const stale = await login(s)
  t.match(await checkAssertion(s.deps, s.rp, auth.assert(stale.options, { counter: 1 }), stale.c), { ok: false, reason: 'replayed' }, 'a fresh challenge but a counter that did not grow (a clone)')
  t.equal((await s.factors.findPasskey(auth.id))?.counter, 1)

  for (const [what, bend] of [
    ['another site\'s origin', { origin: 'https://evil.example' }],
    ['another RP ID hash', { rpId: 'evil.example' }],
    ['no user verification', { flags: FLAG_UP }],
    ['no user presence', { flags: FLAG_UV }],
    ['a registration\'s type', { type: 'webauthn.create' }],
    ['another challenge', { challenge: randomBytes(32).toString('base64url') }],
    ['another user\'s handle', { userHandle: Buffer.from('u_bob').toString('base64url') }],
  ] as const) {
    const l = await login(s)
    t.match(await checkAssertion(s.deps, s.rp, auth.assert(l.options, bend), l.c), { ok: false, reason: 'wrong', factorId: factor.id }, what)
  }
  const other = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  const l = await login(s)
  t.same(await checkAssertion(s.deps, s.rp, other.assert(l.options), l.c), { ok: false, reason: 'unknown' }, 'a credential nobody registered')

  const synced = await login(s)
  t.match(await checkAssertion(s.deps, s.rp, auth.assert(synced.options, { flags: FLAG_UP | FLAG_UV | FLAG_BE | FLAG_BS }), synced.c), { ok: true, backedUp: true }, 'a synced passkey (BS flag)')
  const noHandle = await login(s)
  t.match(await checkAssertion(s.deps, s.rp, auth.assert(noHandle.options, { userHandle: null }), noHandle.c), { ok: false, reason: 'wrong' }, 'no user handle with no user named before: refused (WebAuthn §7.2 step 6)')
  const owner = (await s.deps.factors.findPasskey(auth.id))!.userId
  const step = await login(s)
  t.match(await checkAssertion(s.deps, s.rp, auth.assert(step.options, { userHandle: null }), step.c, owner), { ok: true }, 'no user handle in a second step (the user is known): accepted')
})

t.test('an authenticator without a counter: each response once, through its challenge', async (t) => {
  const s = setup()
  const auth = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  await enrol(s, auth)
  const { options, c } = await login(s)
  const response = auth.assert(options, { counter: 0 })
  t.match(await checkAssertion(s.deps, s.rp, response, c), { ok: true })
  t.match(await checkAssertion(s.deps, s.rp, response, c), { ok: false, reason: 'replayed' }, 'the challenge is spent')
  const next = await login(s)
  t.match(await checkAssertion(s.deps, s.rp, auth.assert(next.options, { counter: 0 }), next.c), { ok: true }, 'a new challenge, counter 0 again: fine')
  t.match(await checkAssertion(s.deps, s.rp, auth.assert((await login(s)).options, { counter: 0 }), { challenge: 'x', exp: s.clock.now() + 1000 }), { ok: false, reason: 'wrong' }, 'signed for another challenge than expected')
})

t.test('the second step accepts only the user\'s own passkey, with amr pwd + hwk|swk', async (t) => {
  const s = setup()
  const auth = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  await enrol(s, auth)
  const bobs = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  await enrol(s, bobs, bob)

  const l = await login(s)
  t.same((await verifySecondStepPasskey(s.deps, 'u_alice', auth.assert(l.options), l.c)).ok && true, true)
  const l2 = await login(s)
  const r = await verifySecondStepPasskey(s.deps, 'u_alice', auth.assert(l2.options), l2.c)
  t.same(r.ok ? r.amr : r, ['pwd', 'hwk', 'user', 'mfa'])
  const l3 = await login(s)
  t.same(await verifySecondStepPasskey(s.deps, 'u_alice', bobs.assert(l3.options), l3.c), { ok: false, reason: 'unknown' }, 'bob\'s passkey does not finish alice\'s sign-in')
  t.equal((await s.factors.findPasskey(bobs.id))?.counter, 0, 'and is not counted')
  const ipDeps = { ...s.deps, config: { issuer: 'http://127.0.0.1:4000' } } as unknown as AuthDeps
  const l4 = await login(s)
  t.same(await verifySecondStepPasskey(ipDeps, 'u_alice', auth.assert(l4.options), l4.c), { ok: false, reason: 'unknown' }, 'no relying party: refused')
})

t.test('malformed credentials are refused as values, never thrown', async (t) => {
  const s = setup()
  const auth = new SoftwareAuthenticator(s.rp.origin, s.rp.id)
  await enrol(s, auth)
  const l = await login(s)
  const good = JSON.parse(auth.assert(l.options)) as AuthenticationResponseJSON
  const bad: (string | undefined)[] = [
    undefined, '', 'null', '[]', '"x"', '{', '1e999', '{"id":1}', 'x'.repeat(20_000),
    JSON.stringify({ ...good, type: 'password' }),
    JSON.stringify({ ...good, id: 'not base64url!' }),
    JSON.stringify({ ...good, response: null }),
    JSON.stringify({ ...good, response: { ...good.response, signature: 7 } }),
    JSON.stringify({ ...good, response: { ...good.response, clientDataJSON: Buffer.from('not json').toString('base64url') } }),
    JSON.stringify({ ...good, response: { ...good.response, authenticatorData: 'AAAA' } }),
    JSON.stringify({ ...good, response: { ...good.response, signature: 'AAAA' } }),
    JSON.stringify({ ...good, response: { ...good.response, userHandle: ['x'] } }),
    JSON.stringify({ ...good, clientExtensionResults: 'x' }),
  ]
  for (const json of bad) {
    const r = await checkAssertion(s.deps, s.rp, json, l.c)
    t.equal(r.ok, false, `refused: ${json?.slice(0, 60)}`)
    const e = await enrolPasskey(s.deps, s.rp, alice, json, l.c, 'x')
    t.equal(e.ok, false)
  }
  t.equal(parseAssertion(JSON.stringify(good))?.id, auth.id, 'the good one parses')
  // With a `__proto__` member too: JSON.parse makes it an own property, nothing is polluted.
  const withProto = `{"__proto__":{"polluted":true},${JSON.stringify(good).slice(1)}`
  t.match(await checkAssertion(s.deps, s.rp, withProto, l.c), { ok: true }, 'and is still accepted after all that (nothing spent by refusals)')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})
