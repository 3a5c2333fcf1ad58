import type { Test } from 'tap'
import type { ManualClock } from '@gatehouse/test-harness'
import { USER_CODE_ALPHABET, deviceCodeHash, type DeviceCodeStore } from '../../src/device/device-codes.js'

/**
 * One conformance suite for the device authorization requests (RFC 8628), run against the memory
 * store and the Redis store (standalone and Cluster). Time is an injected clock the tests move.
 */
export const CLOCK_START = 1_800_000_000_000
/** The stores are built with DEVICE_CODE_TTL 600 s and DEVICE_POLL_INTERVAL 5 s. */
export const TTL_MS = 600_000
export const INTERVAL_S = 5

export type MakeStore = () => Promise<{ store: DeviceCodeStore; clock: ManualClock }>

export function deviceCodeStoreContract(t: Test, make: MakeStore): void {
  t.test('start: a 256-bit device code, an 8-letter user code of the RFC 8628 §6.1 alphabet, a pending request', async (t) => {
    const { store, clock } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid profile' })
    t.match(deviceCode, /^[A-Za-z0-9_-]{43}$/)
    t.equal(Buffer.from(deviceCode, 'base64url').length, 32)
    t.match(request.userCode, new RegExp(`^[${USER_CODE_ALPHABET}]{8}$`))
    t.match(request, { clientId: 'tv', scope: 'openid profile', status: 'pending', createdAt: clock.ms, expiresAt: clock.ms + TTL_MS, interval: INTERVAL_S })
    t.same(await store.findByUserCode(request.userCode), request, 'found by its user code')
    const other = await store.start({ clientId: 'tv', scope: '' })
    t.not(other.deviceCode, deviceCode)
    t.not(other.request.userCode, request.userCode)
    t.not(other.request.id, request.id)
  })

  t.test('poll: pending, then slow_down when sooner than the interval, the interval raised by 5 s from then on', async (t) => {
    const { store, clock } = await make()
    const { deviceCode } = await store.start({ clientId: 'tv', scope: 'openid' })
    t.same(await store.poll(deviceCode, 'tv'), { status: 'pending' }, 'the first poll is pending')
    clock.advance(INTERVAL_S * 1000 - 1)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'slow_down', interval: 10 }, 'a poll 1 ms too early')
    clock.advance(5_000)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'slow_down', interval: 15 }, '5 s is no longer enough: 10 s is the interval now')
    clock.advance(15_000)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'pending' }, 'waiting the raised interval is pending again')
    clock.advance(14_999)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'slow_down', interval: 20 }, 'the raised interval stays raised')
  })

  t.test('approve: the first poll gets the approved request and consumes it; the next finds nothing', async (t) => {
    const { store, clock } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid' })
    t.equal(await store.decide(request.userCode, request.id, { approve: true, userId: 'u_1', authTime: 1_800_000_000 }), 'approved')
    t.equal(await store.findByUserCode(request.userCode), null, 'no longer pending: not offered again')
    t.equal(await store.decide(request.userCode, request.id, { approve: false, userId: 'u_1' }), 'decided', 'a decision is final')
    clock.advance(1)
    const got = await store.poll(deviceCode, 'tv')
    t.match(got, { status: 'approved', request: { id: request.id, clientId: 'tv', scope: 'openid', userId: 'u_1', authTime: 1_800_000_000, status: 'approved' } })
    t.same(await store.poll(deviceCode, 'tv'), { status: 'not_found' }, 'single use')
    clock.advance(10_000)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'not_found' })
  })

  t.test('an approved request polled too fast still yields its tokens once (slow_down is a variant of pending)', async (t) => {
    const { store } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid' })
    t.same(await store.poll(deviceCode, 'tv'), { status: 'pending' })
    await store.decide(request.userCode, request.id, { approve: true, userId: 'u_1', authTime: 1 })
    t.equal((await store.poll(deviceCode, 'tv')).status, 'approved')
  })

  t.test('deny: access denied on every poll until it expires', async (t) => {
    const { store, clock } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid' })
    t.equal(await store.decide(request.userCode, request.id, { approve: false, userId: 'u_1' }), 'denied')
    t.same(await store.poll(deviceCode, 'tv'), { status: 'denied' })
    t.same(await store.poll(deviceCode, 'tv'), { status: 'denied' }, 'no slow_down for a denied request')
    t.equal(await store.decide(request.userCode, request.id, { approve: true, userId: 'u_1', authTime: 1 }), 'decided', 'a denial cannot be turned into an approval')
    clock.advance(TTL_MS)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'expired' })
  })

  t.test('expiry: expired_token for a while, then nothing; no approval after it; the user code is no longer found', async (t) => {
    const { store, clock } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid' })
    clock.advance(TTL_MS - 1)
    t.ok(await store.findByUserCode(request.userCode), 'found until the end')
    clock.advance(1)
    t.equal(await store.findByUserCode(request.userCode), null)
    t.equal(await store.decide(request.userCode, request.id, { approve: true, userId: 'u_1', authTime: 1 }), 'expired')
    t.same(await store.poll(deviceCode, 'tv'), { status: 'expired' })
    clock.advance(TTL_MS)
    t.same(await store.poll(deviceCode, 'tv'), { status: 'not_found' }, 'dropped after as long again')
  })

  t.test('another client cannot poll the request: invalid for it, and nothing changes for the right one', async (t) => {
    const { store } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid' })
    t.same(await store.poll(deviceCode, 'attacker'), { status: 'wrong_client' })
    t.same(await store.poll(deviceCode, 'tv'), { status: 'pending' }, 'no slow_down caused by the other client\'s poll')
    await store.decide(request.userCode, request.id, { approve: true, userId: 'u_1', authTime: 1 })
    t.same(await store.poll(deviceCode, 'attacker'), { status: 'wrong_client' }, 'an approved request is not consumed by another client')
    t.equal((await store.poll(deviceCode, 'tv')).status, 'approved')
  })

  t.test('unknown, malformed and hashed device codes find nothing', async (t) => {
    const { store } = await make()
    const { deviceCode } = await store.start({ clientId: 'tv', scope: 'openid' })
    for (const bad of ['', 'x', deviceCode.slice(1), `${deviceCode}A`, deviceCodeHash(deviceCode), '{x}', 'é'.repeat(43)]) {
      t.same(await store.poll(bad, 'tv'), { status: 'not_found' }, JSON.stringify(bad.slice(0, 12)))
    }
  })

  t.test('a decision needs the request the user was shown: another id or user code changes nothing', async (t) => {
    const { store } = await make()
    const a = await store.start({ clientId: 'tv', scope: 'openid' })
    const b = await store.start({ clientId: 'tv', scope: 'openid' })
    t.equal(await store.decide(a.request.userCode, b.request.id, { approve: true, userId: 'u_1', authTime: 1 }), 'not_found')
    t.equal(await store.decide('BBBBBBBB', a.request.id, { approve: true, userId: 'u_1', authTime: 1 }), 'not_found')
    t.same(await store.poll(a.deviceCode, 'tv'), { status: 'pending' })
    t.equal(await store.findByUserCode('BBBBBBBB'), null)
  })

  t.test('concurrent decisions: exactly one wins', async (t) => {
    const { store } = await make()
    const { request } = await store.start({ clientId: 'tv', scope: 'openid' })
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => store.decide(request.userCode, request.id, i % 2 === 0 ? { approve: true, userId: 'u_1', authTime: 1 } : { approve: false, userId: 'u_1' })))
    t.equal(outcomes.filter((o) => o === 'approved' || o === 'denied').length, 1)
    t.equal(outcomes.filter((o) => o === 'decided').length, 9)
  })

  t.test('concurrent polls of an approved request: tokens for exactly one', async (t) => {
    const { store } = await make()
    const { deviceCode, request } = await store.start({ clientId: 'tv', scope: 'openid' })
    await store.decide(request.userCode, request.id, { approve: true, userId: 'u_1', authTime: 1 })
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => store.poll(deviceCode, 'tv')))
    t.equal(outcomes.filter((o) => o.status === 'approved').length, 1)
    t.equal(outcomes.filter((o) => o.status === 'not_found').length, 9)
  })
}
