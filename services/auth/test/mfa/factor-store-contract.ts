import { createHash, randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import {
  FACTOR_NUMBER_LIMIT, newFactorId,
  type FactorStore, type PasskeyFactor, type RecoveryCodesFactor, type TotpFactor,
} from '../../src/mfa/factors.js'

/**
 * The FactorStore conformance suite (DESIGN §10.5): every store runs exactly these. `addUser`
 * makes a user exist where the store needs one (PostgreSQL's foreign key); the others ignore it.
 * Users are named randomly, so a suite's tests may share one database or one Redis.
 */
export interface FactorStoreUnderTest {
  store: FactorStore
  addUser(userId: string): Promise<void>
}
export type MakeFactorStore = () => Promise<FactorStoreUnderTest>

export const T0 = 1_800_000_000_000

const rand = (): string => randomBytes(5).toString('hex')
const digest = (code: string): string => createHash('sha256').update(code).digest('base64url')

export function totp(userId: string, over: Partial<TotpFactor> = {}): TotpFactor {
  return { id: newFactorId(), userId, kind: 'totp', label: 'Authenticator app', createdAt: T0, sealedSecret: `sealed.${rand()}`, lastStep: -1, ...over }
}

export function passkey(userId: string, over: Partial<PasskeyFactor> = {}): PasskeyFactor {
  return {
    id: newFactorId(), userId, kind: 'passkey', label: 'Passkey on Chrome on macOS', createdAt: T0,
    credentialId: randomBytes(32).toString('base64url'), publicKey: randomBytes(77).toString('base64url'), counter: 0, transports: ['internal', 'hybrid'], ...over,
  }
}

export function recovery(userId: string, codes: readonly string[], over: Partial<RecoveryCodesFactor> = {}): RecoveryCodesFactor {
  return { id: newFactorId(), userId, kind: 'recovery', label: 'Recovery codes', createdAt: T0, codeHashes: codes.map(digest), total: codes.length, ...over }
}

export function factorStoreContract(t: Test, make: MakeFactorStore): void {
  /** A fresh store and a user it knows (random id, or `id`). */
  async function setup(id = `u_${rand()}`): Promise<FactorStoreUnderTest & { user: string }> {
    const s = await make()
    await s.addUser(id)
    return { ...s, user: id }
  }

  t.test('add and list: oldest first, ties in the order added; copies, never the stored records', async (t) => {
    const { store, user, addUser } = await setup()
    const a = totp(user, { createdAt: T0 + 10 })
    const b = passkey(user, { createdAt: T0 })
    const c = passkey(user, { createdAt: T0 + 10, transports: [] })
    const d = recovery(user, ['one', 'two'], { createdAt: T0 + 10 })
    for (const f of [a, b, c, d]) t.equal(await store.add(f), 'added', f.kind)
    t.same(await store.list(user), [b, a, c, d])
    const listed = await store.list(user)
    ;(listed[0] as PasskeyFactor).transports.push('usb')
    listed[0]!.label = 'changed'
    t.same((await store.list(user))[0], b, 'changing what list returned changes nothing')
    const other = `u_${rand()}`
    await addUser(other)
    t.same(await store.list(other), [], 'another user holds nothing')
    t.same(await store.list(`u_${rand()}`), [], 'an unknown user holds nothing')
  })

  t.test('a TOTP and a recovery set at most once per user; passkeys many; an id once', async (t) => {
    const { store, user, addUser } = await setup()
    const first = totp(user)
    t.equal(await store.add(first), 'added')
    t.equal(await store.add(totp(user)), 'exists', 'a second TOTP')
    t.equal(await store.add(recovery(user, ['a'])), 'added')
    t.equal(await store.add(recovery(user, ['b'])), 'exists', 'a second recovery set (replaceRecoveryCodes replaces)')
    t.equal(await store.add(passkey(user)), 'added')
    t.equal(await store.add(passkey(user)), 'added', 'passkeys: as many as the user likes')
    t.equal(await store.add(passkey(user, { id: first.id })), 'exists', 'a factor id the user holds')
    t.equal((await store.list(user)).length, 4)
    const other = `u_${rand()}`
    await addUser(other)
    t.equal(await store.add(totp(other)), 'added', 'the rule is per user')

    const racer = `u_${rand()}`
    await addUser(racer)
    const results = await Promise.all(Array.from({ length: 10 }, () => store.add(totp(racer))))
    t.equal(results.filter((r) => r === 'added').length, 1, 'ten TOTPs added at once: exactly one')
    t.equal((await store.list(racer)).length, 1)
  })

  t.test('replaceRecoveryCodes: the new set replaces the old in one step, and goes last', async (t) => {
    const { store, user } = await setup()
    const old = recovery(user, ['old-1', 'old-2'])
    await store.add(old)
    const key = passkey(user, { createdAt: T0 + 5 })
    await store.add(key)
    const fresh = recovery(user, ['new-1', 'new-2', 'new-3'], { createdAt: T0 + 10 })
    await store.replaceRecoveryCodes(fresh)
    t.same(await store.list(user), [key, fresh])
    t.equal(await store.useRecoveryCode(user, digest('old-1'), T0 + 20), null, 'the old codes are dead')
    t.equal(await store.useRecoveryCode(user, digest('new-1'), T0 + 20), 2)
    const none = `u_${rand()}`
    const s2 = await setup(none)
    await s2.store.replaceRecoveryCodes(recovery(none, ['x']))
    t.equal((await s2.store.list(none)).length, 1, 'creates the set when there was none')
  })

  t.test('a credential id belongs to one passkey across all users, even when added at once', async (t) => {
    const { store, user, addUser } = await setup()
    const mine = passkey(user)
    t.equal(await store.add(mine), 'added')
    const thief = `u_${rand()}`
    await addUser(thief)
    t.equal(await store.add(passkey(thief, { credentialId: mine.credentialId })), 'exists')
    t.same(await store.list(thief), [], 'nothing left behind')
    t.same(await store.findPasskey(mine.credentialId), mine, 'still the first holder')

    const credentialId = randomBytes(32).toString('base64url')
    const users = Array.from({ length: 5 }, () => `u_${rand()}`)
    for (const u of users) await addUser(u)
    const results = await Promise.all(users.map((u) => store.add(passkey(u, { credentialId }))))
    t.equal(results.filter((r) => r === 'added').length, 1, 'five users at once: exactly one')
    const holder = users[results.indexOf('added')]!
    t.equal((await store.findPasskey(credentialId))?.userId, holder)

    const removed = (await store.list(holder))[0]!
    t.ok(await store.remove(holder, removed.id))
    const next = users.find((u) => u !== holder)!
    t.equal(await store.add(passkey(next, { credentialId })), 'added', 'a removed passkey frees its credential id')
    t.equal((await store.findPasskey(credentialId))?.userId, next)
  })

  t.test('remove and removeAll: what was removed, once; a removed passkey is found and used no more', async (t) => {
    const { store, user, addUser } = await setup()
    const a = totp(user)
    const b = passkey(user, { createdAt: T0 + 1 })
    const c = recovery(user, ['r1'], { createdAt: T0 + 2 })
    for (const f of [a, b, c]) await store.add(f)
    const other = `u_${rand()}`
    await addUser(other)
    t.equal(await store.remove(other, b.id), null, "another user's factor is not removed by naming it")
    t.same(await store.findPasskey(b.credentialId), b)
    t.same(await store.remove(user, b.id), b)
    t.equal(await store.remove(user, b.id), null, 'twice: null')
    t.equal(await store.findPasskey(b.credentialId), null, 'findPasskey after remove')
    t.same(await store.usePasskey(b.credentialId, 1, T0 + 10), { status: 'not_found' })
    t.same(await store.list(user), [a, c])
    t.equal(await store.remove(user, 'no-such-factor'), null)

    const d = passkey(user, { createdAt: T0 + 3 })
    await store.add(d)
    t.same(await store.removeAll(user), [a, c, d], 'removeAll: every factor, oldest first')
    t.same(await store.list(user), [])
    t.equal(await store.findPasskey(d.credentialId), null)
    t.same(await store.usePasskey(d.credentialId, 5, T0 + 10), { status: 'not_found' })
    t.equal(await store.useTotpStep(user, a.id, 1, T0 + 10), false)
    t.same(await store.removeAll(user), [], 'nothing left to remove')
    t.equal(await store.add(totp(user)), 'added', 'a user reset by removeAll may enrol again')
  })

  t.test('TOTP: a step is accepted once, and never an earlier one (RFC 6238 §5.2)', async (t) => {
    const { store, user, addUser } = await setup()
    const f = totp(user)
    await store.add(f)
    t.equal(await store.useTotpStep(user, f.id, 60_000_000, T0 + 1), true)
    t.equal(await store.useTotpStep(user, f.id, 60_000_000, T0 + 2), false, 'the same step again')
    t.equal(await store.useTotpStep(user, f.id, 59_999_999, T0 + 3), false, 'an earlier step')
    t.match((await store.list(user))[0], { lastStep: 60_000_000, lastUsedAt: T0 + 1 }, 'the accepted step and its time are recorded')
    t.equal(await store.useTotpStep(user, f.id, 60_000_001, T0 + 30_000), true, 'the next step')
    t.match((await store.list(user))[0], { lastStep: 60_000_001, lastUsedAt: T0 + 30_000 })
    for (const step of [60_000_002.5, -5, Number.NaN, FACTOR_NUMBER_LIMIT, Number.MAX_SAFE_INTEGER]) {
      t.equal(await store.useTotpStep(user, f.id, step, T0), false, `step ${step} refused`)
    }
    t.equal(await store.useTotpStep(user, 'unknown-id', 70_000_000, T0), false, 'no such factor')
    const other = `u_${rand()}`
    await addUser(other)
    t.equal(await store.useTotpStep(other, f.id, 70_000_000, T0), false, "another user's factor")
    const key = passkey(user)
    await store.add(key)
    t.equal(await store.useTotpStep(user, key.id, 70_000_000, T0), false, 'a passkey is no TOTP')
  })

  t.test('passkeys: a counter must grow (WebAuthn §6.1.1); 0 after 0 is an authenticator without one', async (t) => {
    const { store, user } = await setup()
    const f = passkey(user, { counter: 3 })
    await store.add(f)
    const ok = await store.usePasskey(f.credentialId, 7, T0 + 5)
    t.same(ok, { status: 'ok', factor: { ...f, counter: 7, lastUsedAt: T0 + 5 } })
    t.same(await store.usePasskey(f.credentialId, 7, T0 + 6), { status: 'replayed' }, 'the same counter: replayed')
    t.same(await store.usePasskey(f.credentialId, 6, T0 + 6), { status: 'replayed' }, 'a lower counter: a cloned authenticator')
    t.same(await store.usePasskey(f.credentialId, 0, T0 + 6), { status: 'replayed' }, '0 after a counter: replayed')
    for (const c of [8.5, -1, Number.NaN, FACTOR_NUMBER_LIMIT]) t.same(await store.usePasskey(f.credentialId, c, T0), { status: 'replayed' }, `counter ${c}`)
    t.match(await store.findPasskey(f.credentialId), { counter: 7, lastUsedAt: T0 + 5 })
    t.same(await store.usePasskey(randomBytes(32).toString('base64url'), 1, T0), { status: 'not_found' })

    const zero = passkey(user, { transports: [] })
    await store.add(zero)
    t.match(await store.usePasskey(zero.credentialId, 0, T0 + 1), { status: 'ok', factor: { counter: 0, transports: [] } }, '0 over 0')
    t.match(await store.usePasskey(zero.credentialId, 0, T0 + 2), { status: 'ok', factor: { lastUsedAt: T0 + 2 } }, 'and again')
    t.match(await store.usePasskey(zero.credentialId, 1, T0 + 3), { status: 'ok', factor: { counter: 1 } }, 'a counter appearing')
    t.same(await store.usePasskey(zero.credentialId, 0, T0 + 4), { status: 'replayed' })
    const listed = (await store.list(user)).find((x) => x.id === zero.id) as PasskeyFactor
    t.ok(Array.isArray(listed.transports) && listed.transports.length === 0, 'no transports stays an empty array after a use')
    t.ok(Number.isSafeInteger(listed.counter), 'the counter stays a number')
    const big = passkey(user, { counter: 0xffff_fffe })
    await store.add(big)
    t.match(await store.usePasskey(big.credentialId, 0xffff_ffff, T0), { status: 'ok', factor: { counter: 0xffff_ffff } }, 'the whole 32-bit range')
  })

  t.test('recovery codes: each one once; the count left; none left is an empty set', async (t) => {
    const { store, user, addUser } = await setup()
    const set = recovery(user, ['code-1', 'code-2', 'code-3'])
    await store.add(set)
    t.equal(await store.useRecoveryCode(user, digest('code-2'), T0 + 1), 2)
    t.equal(await store.useRecoveryCode(user, digest('code-2'), T0 + 2), null, 'a second use')
    t.equal(await store.useRecoveryCode(user, digest('nope'), T0 + 2), null, 'not one of the codes')
    t.equal(await store.useRecoveryCode(user, '', T0 + 2), null)
    const other = `u_${rand()}`
    await addUser(other)
    t.equal(await store.useRecoveryCode(other, digest('code-1'), T0 + 2), null, "another user's code")
    t.match((await store.list(user))[0], { codeHashes: [digest('code-1'), digest('code-3')], total: 3, lastUsedAt: T0 + 1 })
    t.equal(await store.useRecoveryCode(user, digest('code-3'), T0 + 3), 1)
    t.equal(await store.useRecoveryCode(user, digest('code-1'), T0 + 4), 0)
    t.equal(await store.useRecoveryCode(user, digest('code-1'), T0 + 5), null)
    const spent = (await store.list(user))[0] as RecoveryCodesFactor
    t.same(spent.codeHashes, [], 'an emptied set is an empty array')
    t.equal(spent.total, 3)
  })

  t.test('concurrent uses: ten at once of the same step, counter or code, exactly one wins', async (t) => {
    const { store, user } = await setup()
    const f = totp(user)
    const k = passkey(user, { counter: 10 })
    const r = recovery(user, ['only-once'])
    for (const x of [f, k, r]) await store.add(x)
    const ten = <T>(fn: () => Promise<T>): Promise<T[]> => Promise.all(Array.from({ length: 10 }, fn))
    t.equal((await ten(() => store.useTotpStep(user, f.id, 60_000_000, T0))).filter((x) => x).length, 1, 'TOTP step')
    t.equal((await ten(() => store.usePasskey(k.credentialId, 11, T0))).filter((x) => x.status === 'ok').length, 1, 'passkey counter')
    t.same((await ten(() => store.useRecoveryCode(user, digest('only-once'), T0))).filter((x) => x !== null), [0], 'recovery code')
    const steps = await Promise.all(Array.from({ length: 10 }, (_, i) => store.useTotpStep(user, f.id, 60_000_001 + i, T0)))
    t.ok(steps.some((x) => x), 'of ten different later steps at once, some are accepted')
    const after = (await store.list(user)).find((x): x is TotpFactor => x.id === f.id && x.kind === 'totp')
    t.ok(after !== undefined && after.lastStep >= 60_000_001 + steps.lastIndexOf(true), 'the last step recorded is at least the latest accepted')
  })

  t.test('awkward values: ids starting with -, unicode and brace user ids, long credential ids, hostile labels', async (t) => {
    for (const userId of ['-starts-with-dash', 'ユーザー🙂', 'u_{brace}x}', 'with space and "quotes"', 'x'.repeat(128)]) {
      const { store, user } = await setup(userId)
      const f = totp(user, { id: '-dash-first' })
      t.equal(await store.add(f), 'added', JSON.stringify(userId))
      const k = passkey(user, { id: '--two-dashes', credentialId: randomBytes(1023).toString('base64url') })
      t.equal(k.credentialId.length, 1364, 'the longest credential id WebAuthn allows (1023 bytes)')
      t.equal(await store.add(k), 'added')
      t.same(await store.list(user), [f, k])
      t.same(await store.findPasskey(k.credentialId), k)
      t.equal(await store.findPasskey(k.credentialId.slice(0, -1)), null, 'a prefix of it is another credential')
      t.equal(await store.useTotpStep(user, '-dash-first', 1, T0), true)
      t.match(await store.usePasskey(k.credentialId, 1, T0), { status: 'ok', factor: { userId: user } })
      t.same(await store.remove(user, '--two-dashes'), { ...k, counter: 1, lastUsedAt: T0 })
      t.equal(await store.findPasskey(k.credentialId), null)
      t.equal((await store.removeAll(user)).length, 1)
    }

    const { store, user } = await setup()
    const labels: [string, string][] = [
      ['Clé « bureau » 🔑', 'Clé « bureau » 🔑'],
      ['</script><script>alert(1)</script> \\ " \' / \n', '</script><script>alert(1)</script> \\ " \' / \n'],
      ['lone \ud800 surrogate', 'lone \ufffd surrogate'],
      ['nul\u0000byte', 'nul\ufffdbyte'],
    ]
    for (const [label, stored] of labels) {
      const k = passkey(user, { label })
      t.equal(await store.add(k), 'added', JSON.stringify(label))
      t.equal((await store.findPasskey(k.credentialId))?.label, stored, `kept as ${JSON.stringify(stored)}`)
      t.match(await store.usePasskey(k.credentialId, 1, T0), { status: 'ok', factor: { label: stored } }, 'and after a use rewrote the record')
      t.equal((await store.findPasskey(k.credentialId))?.label, stored)
    }
    const slashy = passkey(user, { credentialId: 'a/b+c=d\\e' })
    t.equal(await store.add(slashy), 'added', 'a credential id of any characters')
    t.same(await store.findPasskey('a/b+c=d\\e'), slashy)

    for (const bad of ['', 'has space', 'x'.repeat(65), 'semi;colon', 'ü']) {
      await t.rejects(store.add(totp(user, { id: bad })), TypeError, `factor id ${JSON.stringify(bad)} refused`)
      t.equal(await store.remove(user, bad), null)
      t.equal(await store.useTotpStep(user, bad, 1, T0), false)
    }
  })
}

