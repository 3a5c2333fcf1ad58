// Over 300 lines: one contract for every family store (memory, Redis standalone, Cluster,
// Sentinel), every rule of DESIGN §5 next to the others, as the stores restate them.
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import type { Cluster, Redis } from 'ioredis'
import { RECENT_REVOCATIONS_KEY } from '@gatehouse/service-kit'
import { RefreshTokenCodec } from '../../src/families/refresh-token-codec.js'
import type { FamilyInput, FamilyPolicy, FamilyStore, RotateOutcome } from '../../src/families/types.js'
import type { Clock } from '../../src/store/types.js'

/**
 * The FamilyStore conformance suite (DESIGN §5). Every implementation runs exactly these
 * tests; a behaviour that is not here is not part of the contract. Time is an injected clock
 * that the tests advance: nothing sleeps.
 */

export const SECOND = 1000
export const MINUTE = 60 * SECOND
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR

export const DEFAULT_TEST_POLICY: FamilyPolicy = Object.freeze({
  absoluteTtlMs: 30 * DAY,
  idleTtlMs: 7 * DAY,
  reuseGraceMs: 10 * SECOND,
})

/** Where the suite's clock starts (ms). */
export const CLOCK_START = 1_700_000_000_000

export interface StoreFactoryInput {
  clock: Clock
  policy: FamilyPolicy
  codec: RefreshTokenCodec
  /** For a store that announces in-process (memory): where its announcements go. */
  announce?: (sid: string, exp: number) => void
  /** Seconds an announcement lives (ACCESS_TOKEN_TTL). */
  accessTokenTtlS?: number
}

/** The announcement lifetime the suite gives every store. */
export const ANNOUNCE_TTL_S = 600

/**
 * How the suite sees what a store announced (DESIGN §6): the `exp` recorded for a family id (the
 * recent-revocations set in Redis; the `announce` callback in memory), and forgetting it, as a
 * lost announcement would be.
 */
export interface AnnouncementProbe {
  exp(sid: string): Promise<number | null>
  forget(sid: string): Promise<void>
}

/**
 * The probe of a Redis store: the recent set, read through any client of the deployment.
 * `waitMs`: how long a missing entry is waited for (Cluster writes it after the script, through
 * the store's outbox); 0 elsewhere, where the script itself writes it.
 */
export function redisAnnouncementProbe(redis: Redis | Cluster, waitMs = 0): AnnouncementProbe {
  return {
    async exp(sid) {
      const deadline = Date.now() + waitMs
      for (;;) {
        const score = await redis.zscore(RECENT_REVOCATIONS_KEY, sid)
        if (score !== null) return Number(score)
        if (Date.now() >= deadline) return null
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    async forget(sid) {
      await redis.zrem(RECENT_REVOCATIONS_KEY, sid)
    },
  }
}

/** Builds a fresh, empty store (its own key space); the suite closes it. */
export type StoreFactory = (input: StoreFactoryInput) => Promise<FamilyStore>

interface Fixture {
  store: FamilyStore
  clock: ManualClock
  codec: RefreshTokenCodec
  policy: FamilyPolicy
}

const CLIENT = 'web-app'
const OTHER_CLIENT = 'other-app'

function uniq(label: string): string {
  return `${label}-${randomBytes(6).toString('hex')}`
}

function input(overrides: Partial<FamilyInput> = {}): FamilyInput {
  return {
    userId: uniq('user'),
    clientId: CLIENT,
    scope: 'openid profile documents:read',
    authTime: 1_700_000_000,
    ...overrides,
  }
}

/** A token with a valid format but a MAC made with another key. */
function forgeMac(familyId: string, generation: number): string {
  return new RefreshTokenCodec(randomBytes(32)).mint(familyId, generation)
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** The token with MAC character `index` changed; at index 42 only in its low (unused) bit. */
function flipMacChar(token: string, index: number): string {
  const [id, gen, mac = ''] = token.split('.')
  const v = B64URL.indexOf(mac[index] ?? 'A')
  const flipped = B64URL[index === 42 ? v ^ 1 : (v + 1) % 64]
  return `${id}.${gen}.${mac.slice(0, index)}${flipped}${mac.slice(index + 1)}`
}

/** `probe`: how announcements are seen; by default the `announce` callback (the memory store). */
export function familyStoreContract(t: Test, factory: StoreFactory, probe?: AnnouncementProbe): void {
  const inProcess = new Map<string, number>()
  const announce = (sid: string, exp: number): void => {
    inProcess.set(sid, Math.max(exp, inProcess.get(sid) ?? 0))
  }
  const announced: AnnouncementProbe = probe ?? {
    exp: async (sid) => inProcess.get(sid) ?? null,
    forget: async (sid) => {
      inProcess.delete(sid)
    },
  }

  async function setup(t: Test, policy: Partial<FamilyPolicy> = {}): Promise<Fixture> {
    const clock = new ManualClock(CLOCK_START)
    const codec = new RefreshTokenCodec(randomBytes(32))
    const full = { ...DEFAULT_TEST_POLICY, ...policy }
    const store = await factory({ clock: clock.now, policy: full, codec, announce, accessTokenTtlS: ANNOUNCE_TTL_S })
    t.teardown(() => store.close())
    return { store, clock, codec, policy: full }
  }

  async function rotateOk(t: Test, store: FamilyStore, token: string, clientId = CLIENT): Promise<string> {
    const out = await store.rotate(token, { clientId })
    t.equal(out.status, 'rotated', 'rotates')
    if (out.status !== 'rotated') throw new Error(`expected rotated, got ${out.status}`)
    return out.refreshToken
  }

  t.test('create starts a family at generation 0 with a fixed absolute expiry', async (t) => {
    const { store, clock, codec, policy } = await setup(t)
    const now = clock.now()
    const { family, refreshToken } = await store.create(input({ userId: 'alice', sessionId: 'sess-1' }))
    t.match(family, {
      userId: 'alice',
      clientId: CLIENT,
      scope: 'openid profile documents:read',
      sessionId: 'sess-1',
      authTime: 1_700_000_000,
      createdAt: now,
      expiresAt: now + policy.absoluteTtlMs,
      lastUsedAt: now,
      generation: 0,
      revoked: false,
    })
    t.same(codec.parse(refreshToken), { familyId: family.id, generation: 0 }, 'the token names the family')
    t.same(await store.get(family.id), family, 'get returns what create returned')
    t.same(await store.lookup(refreshToken), { family, current: true })

    const other = await store.create(input())
    t.not(other.family.id, family.id, 'family ids are unique')
    t.notOk('sessionId' in other.family, 'no sessionId without a session')
  })

  t.test('the granted resources (RFC 8707) are kept as given, through rotation, lookup, listing and revocation', async (t) => {
    const { store } = await setup(t)
    const resources = ['api://resource', 'api://reports', 'urn:example:api:1']
    const { family, refreshToken: t0 } = await store.create(input({ resources }))
    t.same(family.resources, resources, 'create returns them, in order')
    t.same((await store.get(family.id))?.resources, resources, 'get')
    const rotated = await store.rotate(t0, { clientId: CLIENT })
    t.same(rotated.status === 'rotated' ? rotated.family.resources : null, resources, 'the rotated family')
    t.same((await store.lookup(t0))?.family.resources, resources, 'lookup of a spent token')
    t.same((await store.listByUser(family.userId)).find((f) => f.id === family.id)?.resources, resources, 'listByUser')
    t.same((await store.revoke(family.id, 'revocation'))?.resources, resources, 'revoke')
    resources.push('api://later')
    t.same((await store.get(family.id))?.resources, resources.slice(0, 3), "the caller's array is copied, not kept")

    const one = await store.create(input({ resources: ['api://resource'] }))
    t.same((await store.get(one.family.id))?.resources, ['api://resource'])
    const none = await store.create(input())
    t.notOk('resources' in none.family, 'a family created without them has none (older families: the client decides)')
    t.notOk('resources' in ((await store.get(none.family.id)) ?? {}))
  })

  t.test('how the user authenticated (amr) and the acr flag are kept through rotation, retry, lookup, listing and revocation (OIDC Core §12.2)', async (t) => {
    const { store } = await setup(t)
    const amr = ['pwd', 'otp', 'mfa']
    const { family, refreshToken: t0 } = await store.create(input({ amr, acrInAccessTokens: true }))
    t.same(family.amr, amr, 'create returns them, in order')
    t.equal(family.acrInAccessTokens, true)
    t.same((await store.get(family.id))?.amr, amr, 'get')
    const rotated = await store.rotate(t0, { clientId: CLIENT })
    t.same(rotated.status === 'rotated' ? [rotated.family.amr, rotated.family.acrInAccessTokens] : null, [amr, true], 'the rotated family')
    const retried = await store.rotate(t0, { clientId: CLIENT })
    t.same(retried.status === 'retried' ? [retried.family.amr, retried.family.acrInAccessTokens] : null, [amr, true], 'a retry within the grace window')
    t.same((await store.lookup(t0))?.family.amr, amr, 'lookup of a spent token')
    t.same((await store.listByUser(family.userId)).find((f) => f.id === family.id)?.amr, amr, 'listByUser')
    t.same((await store.revoke(family.id, 'revocation'))?.amr, amr, 'revoke')
    amr.push('hwk')
    t.same((await store.get(family.id))?.amr, ['pwd', 'otp', 'mfa'], "the caller's array is copied, not kept")

    const passkey = await store.create(input({ amr: ['hwk', 'user', 'mfa'] }))
    const got = await store.get(passkey.family.id)
    t.same(got?.amr, ['hwk', 'user', 'mfa'])
    t.notOk('acrInAccessTokens' in (got ?? {}), 'no flag unless asked')
    const none = await store.create(input({ acrInAccessTokens: false }))
    t.notOk('amr' in none.family, 'a family created without amr has none (older families, token exchange)')
    t.notOk('amr' in ((await store.get(none.family.id)) ?? {}))
    t.notOk('acrInAccessTokens' in ((await store.get(none.family.id)) ?? {}), 'false is kept as absent')
  })

  t.test('rotation: the current token gets the next; the spent one is no longer current', async (t) => {
    const { store, clock, codec } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    clock.advance(5 * MINUTE)
    const out = await store.rotate(t0, { clientId: CLIENT })
    if (out.status !== 'rotated') throw new Error(`expected rotated, got ${out.status}`)
    t.same(codec.parse(out.refreshToken), { familyId: family.id, generation: 1 })
    t.equal(out.family.generation, 1)
    t.equal(out.family.lastUsedAt, clock.now(), 'last use is now')
    t.equal(out.family.expiresAt, family.expiresAt, 'absolute expiry unchanged')
    t.same(await store.get(family.id), out.family)

    t.match(await store.lookup(t0), { family: { id: family.id, generation: 1 }, current: false })
    t.match(await store.lookup(out.refreshToken), { family: { id: family.id }, current: true })

    clock.advance(HOUR)
    const t2 = await rotateOk(t, store, out.refreshToken)
    t.same(codec.parse(t2), { familyId: family.id, generation: 2 })
  })

  t.test('a retry within the grace window gets the same successor; the window never extends', async (t) => {
    const { store, clock, policy } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const t1 = await rotateOk(t, store, t0)

    clock.advance(policy.reuseGraceMs - 1)
    const retry = await store.rotate(t0, { clientId: CLIENT })
    t.match(retry, { status: 'retried', refreshToken: t1, family: { id: family.id, generation: 1, revoked: false } })

    clock.advance(1) // exactly at the edge of the window: still a retry
    t.match(await store.rotate(t0, { clientId: CLIENT }), { status: 'retried', refreshToken: t1 })

    // Had a retry reset the window, this would still be a retry.
    clock.advance(1)
    const late = await store.rotate(t0, { clientId: CLIENT })
    t.match(late, { status: 'reused', family: { id: family.id, revoked: true } })
    t.match(await store.rotate(t1, { clientId: CLIENT }), { status: 'revoked' }, 'the family is revoked')
  })

  t.test('the grace window covers only the immediate predecessor', async (t) => {
    const { store } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const t1 = await rotateOk(t, store, t0)
    const t2 = await rotateOk(t, store, t1)
    t.match(await store.rotate(t1, { clientId: CLIENT }), { status: 'retried', refreshToken: t2 }, 'the predecessor retries')
    const out = await store.rotate(t0, { clientId: CLIENT })
    t.match(out, { status: 'reused', family: { id: family.id, revoked: true } }, 'two generations back is reuse, even at once')
    t.match(await store.rotate(t2, { clientId: CLIENT }), { status: 'revoked' })
  })

  t.test('reuse after the grace window revokes the family; every token then fails', async (t) => {
    const { store, clock, policy } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const t1 = await rotateOk(t, store, t0)
    clock.advance(policy.reuseGraceMs + 1)
    const out = await store.rotate(t0, { clientId: CLIENT })
    t.match(out, { status: 'reused', family: { id: family.id, userId: family.userId, revoked: true } })

    t.match(await store.rotate(t1, { clientId: CLIENT }), { status: 'revoked', family: { id: family.id } }, 'the current token fails')
    t.match(await store.rotate(t0, { clientId: CLIENT }), { status: 'revoked' }, 'the spent one too')
    t.match(await store.get(family.id), { id: family.id, revoked: true }, 'get shows the revoked family')
    t.match(await store.lookup(t1), { family: { revoked: true }, current: true })
    t.same(await store.listByUser(family.userId), [], 'not listed')
    t.equal(await store.revoke(family.id, 'admin'), null, 'revoking again returns null')
  })

  t.test('a spent token in a request older than the last rotation is stale, not reuse', async (t) => {
    // A rotation command re-sent by the Redis client after a failover runs with the `now` of
    // the request its caller gave up on; the client has since rotated twice.
    const { store, clock, policy } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const sent = clock.now()
    clock.advance(SECOND)
    const t1 = await rotateOk(t, store, t0)
    clock.advance(policy.reuseGraceMs + 1)
    const t2 = await rotateOk(t, store, t1)
    const later = clock.now()
    clock.set(sent)
    t.same(await store.rotate(t0, { clientId: CLIENT }), { status: 'stale' })
    clock.set(later + policy.reuseGraceMs + 1)
    t.match(await store.get(family.id), { revoked: false, generation: 2 }, 'nothing changed')
    await rotateOk(t, store, t2)
    t.match(await store.rotate(t0, { clientId: CLIENT }), { status: 'reused' }, 'the same token in a fresh request is reuse')
  })

  t.test('a forged token naming a real family is not_found and does not revoke it', async (t) => {
    const { store, codec } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const t1 = await rotateOk(t, store, t0)
    const before = await store.get(family.id)

    const forged = [
      forgeMac(family.id, 0), // right id, spent generation, wrong MAC: would be "reuse" if believed
      forgeMac(family.id, 1), // right id and generation, wrong MAC
      forgeMac(family.id, 7), // a made-up generation
      `${family.id}.0.${'A'.repeat(43)}`,
      `${family.id}.0`,
      `${family.id}.x.${t1.split('.')[2]}`,
      flipMacChar(t1, 0), // one character of the MAC changed
      flipMacChar(t1, 42), // only the 2 unused bits of the last character: same bytes, not the same token
      flipMacChar(t0, 42),
      `${t1}.extra`,
      '',
      'not a token',
      'x'.repeat(10_000),
    ]
    for (const token of forged) {
      t.same(await store.rotate(token, { clientId: CLIENT }), { status: 'not_found' }, `rotate ${token.slice(0, 40)}`)
      t.equal(await store.lookup(token), null, 'lookup is null')
    }
    // A genuine token of a generation the family never reached (cannot happen without the key).
    const future = codec.mint(family.id, 5)
    t.same(await store.rotate(future, { clientId: CLIENT }), { status: 'not_found' })
    t.equal(await store.lookup(future), null)

    t.same(await store.get(family.id), before, 'the family is untouched')
    const t2 = await rotateOk(t, store, t1)
    t.ok(t2, 'the current token still rotates')
  })

  t.test('a genuine token of an unknown family is not_found', async (t) => {
    const { store, codec } = await setup(t)
    const token = codec.mint(RefreshTokenCodec.newFamilyId(), 0)
    t.same(await store.rotate(token, { clientId: CLIENT }), { status: 'not_found' })
    t.equal(await store.lookup(token), null)
    t.equal(await store.get(RefreshTokenCodec.newFamilyId()), null)
    t.equal(await store.get('not/a{valid}id'), null)
    t.equal(await store.revoke('not/a{valid}id', 'admin'), null)
  })

  t.test('another client presenting a genuine token: client_mismatch, nothing changes', async (t) => {
    const { store, clock, policy } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const t1 = await rotateOk(t, store, t0)
    const before = await store.get(family.id)
    clock.advance(MINUTE)

    t.match(await store.rotate(t1, { clientId: OTHER_CLIENT }), { status: 'client_mismatch', family: { id: family.id } })
    t.same(await store.get(family.id), before, 'current token by another client: no state change')

    clock.advance(policy.reuseGraceMs + 1)
    t.match(await store.rotate(t0, { clientId: OTHER_CLIENT }), { status: 'client_mismatch' })
    t.same(await store.get(family.id), before, 'a spent token by another client does not revoke')

    const t2 = await rotateOk(t, store, t1)
    t.ok(t2, 'the owner still rotates')
  })

  t.test('a family bound to a DPoP key rotates only with that key; a mismatch changes nothing', async (t) => {
    const { store, clock, policy } = await setup(t)
    const KEY_A = 'jkt-of-key-a-0123456789abcdefghijklmnopq'
    const KEY_B = 'jkt-of-key-b-0123456789abcdefghijklmnopq'
    const { family, refreshToken: t0 } = await store.create(input({ jkt: KEY_A }))
    t.equal(family.jkt, KEY_A, 'the family records its key')
    t.same(await store.get(family.id), family, 'and keeps it')
    const before = await store.get(family.id)
    clock.advance(MINUTE)

    t.match(await store.rotate(t0, { clientId: CLIENT, jkt: KEY_B }), { status: 'key_mismatch', family: { id: family.id, jkt: KEY_A } }, 'another key')
    t.match(await store.rotate(t0, { clientId: CLIENT }), { status: 'key_mismatch' }, 'no key')
    t.match(await store.rotate(t0, { clientId: CLIENT, jkt: '' }), { status: 'key_mismatch' }, 'an empty key')
    t.same(await store.get(family.id), before, 'nothing spent, nothing revoked')

    const out = await store.rotate(t0, { clientId: CLIENT, jkt: KEY_A })
    t.match(out, { status: 'rotated', family: { generation: 1, jkt: KEY_A } }, 'the right key still rotates the same token')
    if (out.status !== 'rotated') return

    // A spent token with the wrong key is refused before the generations are looked at: a thief
    // without the key can neither rotate nor revoke the family (no reuse by someone who cannot use it).
    clock.advance(policy.reuseGraceMs + 1)
    t.match(await store.rotate(t0, { clientId: CLIENT, jkt: KEY_B }), { status: 'key_mismatch' })
    t.match(await store.get(family.id), { generation: 1, revoked: false }, 'a spent token without the key does not revoke')
    t.match(await store.rotate(out.refreshToken, { clientId: CLIENT }), { status: 'key_mismatch' })
    t.match(await store.rotate(out.refreshToken, { clientId: OTHER_CLIENT, jkt: KEY_A }), { status: 'client_mismatch' }, 'the client check comes first')
    t.match(await store.rotate(out.refreshToken, { clientId: CLIENT, jkt: KEY_A }), { status: 'rotated', family: { generation: 2 } })
  })

  t.test('an unbound family stays unbound unless told to bind; told, it binds to the key in the same step', async (t) => {
    const { store } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    t.notOk('jkt' in family, 'no key without one')
    const out = await store.rotate(t0, { clientId: CLIENT, jkt: 'some-key-thumbprint' })
    t.match(out, { status: 'rotated' })
    if (out.status !== 'rotated') return
    t.notOk('jkt' in out.family, 'a proof alone (a confidential client) does not bind the family')
    const plain = await store.rotate(out.refreshToken, { clientId: CLIENT })
    t.match(plain, { status: 'rotated' })
    if (plain.status !== 'rotated') return

    // A public client's first proof (RFC 9449 §5): bound as it rotates, then only that key rotates.
    t.match(await store.rotate(plain.refreshToken, { clientId: CLIENT, bind: true }), { status: 'rotated' }, 'bind without a key binds nothing')
    const second = await store.create(input())
    const bound = await store.rotate(second.refreshToken, { clientId: CLIENT, jkt: 'key-a-thumbprint', bind: true })
    t.match(bound, { status: 'rotated', family: { jkt: 'key-a-thumbprint' } })
    if (bound.status !== 'rotated') return
    t.equal((await store.get(second.family.id))?.jkt, 'key-a-thumbprint', 'the binding is kept')
    t.match(await store.rotate(bound.refreshToken, { clientId: CLIENT }), { status: 'key_mismatch' }, 'no proof: refused')
    t.match(await store.rotate(bound.refreshToken, { clientId: CLIENT, jkt: 'key-b-thumbprint', bind: true }), { status: 'key_mismatch' }, 'another key cannot rebind it')
    t.match(await store.rotate(bound.refreshToken, { clientId: CLIENT, jkt: 'key-a-thumbprint', bind: true }), { status: 'rotated', family: { jkt: 'key-a-thumbprint' } })
  })

  t.test('idle expiry slides with use; an unused family expires', async (t) => {
    const { store, clock, policy } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    clock.advance(policy.idleTtlMs - 1)
    const t1 = await rotateOk(t, store, t0)
    clock.advance(policy.idleTtlMs - 1)
    t.ok(await store.get(family.id), 'alive one ms before the idle expiry')
    t.equal((await store.listByUser(family.userId)).length, 1)
    clock.advance(1)
    t.same(await store.rotate(t1, { clientId: CLIENT }), { status: 'expired' }, 'expired at the idle expiry')
    t.equal(await store.get(family.id), null)
    t.equal(await store.lookup(t1), null)
    t.same(await store.listByUser(family.userId), [])
    t.equal(await store.revoke(family.id, 'admin'), null, 'an expired family is not live')
  })

  t.test('absolute expiry is fixed at creation; rotation never extends it', async (t) => {
    const { store, clock } = await setup(t, { absoluteTtlMs: 10 * HOUR, idleTtlMs: 4 * HOUR })
    const { family, refreshToken } = await store.create(input())
    let token = refreshToken
    for (let i = 0; i < 3; i++) {
      clock.advance(3 * HOUR)
      const out = await store.rotate(token, { clientId: CLIENT })
      if (out.status !== 'rotated') throw new Error(`expected rotated, got ${out.status}`)
      t.equal(out.family.expiresAt, family.expiresAt, `expiresAt unchanged after rotation ${i + 1}`)
      token = out.refreshToken
    }
    clock.advance(HOUR - 1) // 10 h - 1 ms after creation, used 59 min ago
    t.ok(await store.get(family.id), 'alive just before')
    clock.advance(1)
    t.same(await store.rotate(token, { clientId: CLIENT }), { status: 'expired' }, 'expired at the absolute expiry, idle or not')
    t.equal(await store.get(family.id), null)
  })

  t.test('revoke: a live family once; the revoked family answers revoked', async (t) => {
    const { store } = await setup(t)
    const { family, refreshToken } = await store.create(input())
    t.match(await store.revoke(family.id, 'revocation'), { id: family.id, revoked: true })
    t.equal(await store.revoke(family.id, 'revocation'), null, 'already revoked')
    t.match(await store.rotate(refreshToken, { clientId: CLIENT }), { status: 'revoked', family: { id: family.id } })
    t.equal(await store.revoke(RefreshTokenCodec.newFamilyId(), 'admin'), null, 'unknown family')
  })

  t.test('every revocation is announced by the step that revokes; a revoked family is announced again', async (t) => {
    // Issue 20: announcing is not a second call that can fail on its own.
    const { store, clock, policy } = await setup(t)
    const expNow = (): number => Math.floor(clock.now() / SECOND) + ANNOUNCE_TTL_S

    const reused = await store.create(input())
    await rotateOk(t, store, reused.refreshToken)
    clock.advance(policy.reuseGraceMs + 1)
    t.match(await store.rotate(reused.refreshToken, { clientId: CLIENT }), { status: 'reused' })
    t.equal(await announced.exp(reused.family.id), expNow(), 'reuse: announced, exp = now + ACCESS_TOKEN_TTL')

    const revoked = await store.create(input())
    t.ok(await store.revoke(revoked.family.id, 'revocation'))
    t.equal(await announced.exp(revoked.family.id), expNow(), 'revoke: announced')

    // A lost announcement (a subscriber missed it, the entry is gone): revoking again repairs it.
    await announced.forget(revoked.family.id)
    clock.advance(SECOND)
    t.equal(await store.revoke(revoked.family.id, 'admin'), null, 'already revoked: null')
    t.equal(await announced.exp(revoked.family.id), expNow(), 'but announced again')
    await announced.forget(reused.family.id)
    t.equal(await store.revoke(reused.family.id, 'revocation'), null)
    t.equal(await announced.exp(reused.family.id), expNow(), 'a family revoked for reuse too')

    const user = uniq('user')
    const sess = uniq('sess')
    const byUser = await store.create(input({ userId: user }))
    const bySession = await store.create(input({ userId: uniq('user'), sessionId: sess }))
    t.equal((await store.revokeByUser(user, 'password_change')).length, 1)
    t.equal(await announced.exp(byUser.family.id), expNow(), 'revokeByUser: announced')
    t.equal((await store.revokeBySession(sess, 'logout')).length, 1)
    t.equal(await announced.exp(bySession.family.id), expNow(), 'revokeBySession: announced')

    const unknown = RefreshTokenCodec.newFamilyId()
    t.equal(await store.revoke(unknown, 'admin'), null)
    const live = await store.create(input())
    await rotateOk(t, store, live.refreshToken)
    // Checked last and on live families only: an absent entry may be waited for (Cluster).
    t.equal(await announced.exp(live.family.id), null, 'a rotation announces nothing')
  })

  t.test('revokeByUser revokes every live family of the user, and only those', async (t) => {
    const { store } = await setup(t)
    const alice = uniq('alice')
    const bob = uniq('bob')
    const a1 = await store.create(input({ userId: alice }))
    const a2 = await store.create(input({ userId: alice, sessionId: uniq('sess'), clientId: OTHER_CLIENT }))
    const a3 = await store.create(input({ userId: alice }))
    const b1 = await store.create(input({ userId: bob }))
    t.equal(await store.revoke(a3.family.id, 'admin').then((f) => f?.id), a3.family.id)

    const revoked = await store.revokeByUser(alice, 'password_change')
    t.same(revoked.map((f) => f.id).sort(), [a1.family.id, a2.family.id].sort(), 'live families only (a3 was already revoked)')
    t.ok(revoked.every((f) => f.revoked && f.userId === alice))
    t.match(await store.rotate(a1.refreshToken, { clientId: CLIENT }), { status: 'revoked' })
    t.match(await store.rotate(a2.refreshToken, { clientId: OTHER_CLIENT }), { status: 'revoked' })
    t.same(await store.listByUser(alice), [])
    t.same(await store.revokeByUser(alice, 'password_change'), [], 'nothing left to revoke')

    await rotateOk(t, store, b1.refreshToken)
    t.equal((await store.listByUser(bob)).length, 1, "bob's family is untouched")
    t.same(await store.revokeByUser(uniq('nobody'), 'admin'), [])

    const a4 = await store.create(input({ userId: alice }))
    t.same((await store.listByUser(alice)).map((f) => f.id), [a4.family.id], 'a new login after revocation works')
  })

  t.test('revokeBySession revokes the families of one login session', async (t) => {
    const { store } = await setup(t)
    const user = uniq('user')
    const s1 = uniq('sess')
    const s2 = uniq('sess')
    const f1 = await store.create(input({ userId: user, sessionId: s1 }))
    const f2 = await store.create(input({ userId: user, sessionId: s1, clientId: OTHER_CLIENT }))
    const f3 = await store.create(input({ userId: user, sessionId: s2 }))
    const f4 = await store.create(input({ userId: user }))

    const revoked = await store.revokeBySession(s1, 'logout')
    t.same(revoked.map((f) => f.id).sort(), [f1.family.id, f2.family.id].sort())
    t.ok(revoked.every((f) => f.revoked && f.sessionId === s1))
    t.match(await store.rotate(f1.refreshToken, { clientId: CLIENT }), { status: 'revoked' })
    t.same(
      (await store.listByUser(user)).map((f) => f.id).sort(),
      [f3.family.id, f4.family.id].sort(),
      'the other session and the session-less family live on',
    )
    t.same(await store.revokeBySession(s1, 'logout'), [], 'idempotent')
    t.same(await store.revokeBySession(uniq('sess'), 'logout'), [])
    await rotateOk(t, store, f3.refreshToken)
  })

  t.test('listByUser lists live families only, oldest first', async (t) => {
    const { store, clock, policy } = await setup(t)
    const user = uniq('user')
    t.same(await store.listByUser(user), [])
    const old = await store.create(input({ userId: user }))
    clock.advance(policy.idleTtlMs - HOUR)
    const f1 = await store.create(input({ userId: user, scope: 'openid' }))
    clock.advance(MINUTE)
    const f2 = await store.create(input({ userId: user, sessionId: uniq('sess') }))
    const f3 = await store.create(input({ userId: user }))
    await store.revoke(f3.family.id, 'admin')
    clock.advance(HOUR) // `old` is now idle-expired
    const list = await store.listByUser(user)
    t.same(list, [f1.family, f2.family], 'expired and revoked families are left out')
    t.equal(await store.get(old.family.id), null)
  })

  t.test('20 concurrent rotations of one token never fork the family', async (t) => {
    const { store, codec } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const outs: RotateOutcome[] = await Promise.all(
      Array.from({ length: 20 }, () => store.rotate(t0, { clientId: CLIENT })),
    )
    const statuses = outs.map((o) => o.status)
    t.equal(statuses.filter((s) => s === 'rotated').length, 1, 'exactly one rotation')
    t.equal(statuses.filter((s) => s === 'retried').length, 19, 'the rest are retries')
    const successors = new Set(outs.map((o) => ('refreshToken' in o ? o.refreshToken : null)))
    t.equal(successors.size, 1, 'all got the identical successor')
    const [t1] = [...successors]
    t.same(codec.parse(t1 ?? ''), { familyId: family.id, generation: 1 })
    t.match(await store.get(family.id), { generation: 1, revoked: false })
    await rotateOk(t, store, t1 ?? '')
  })

  t.test('lookup changes nothing', async (t) => {
    const { store, clock, policy } = await setup(t)
    const { family, refreshToken: t0 } = await store.create(input())
    const t1 = await rotateOk(t, store, t0)
    clock.advance(policy.reuseGraceMs + 1)
    const before = await store.get(family.id)
    t.match(await store.lookup(t0), { current: false, family: { revoked: false } }, 'a spent token: found, not current')
    t.same(await store.get(family.id), before, 'lookup of a spent token does not revoke')
    t.match(await store.lookup(t1), { current: true })
    t.equal(await store.lookup(forgeMac(family.id, 1)), null)
  })

  t.test('ping answers', async (t) => {
    const { store } = await setup(t)
    await t.resolves(store.ping())
  })
}
