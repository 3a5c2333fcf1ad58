import type { Test } from 'tap'
import type { ManualClock } from '@gatehouse/test-harness'
import { REFERENCE, type PushedRequestStore } from '../../src/par/request-store.js'

/**
 * The conformance suite of the pushed-request stores (RFC 9126): the memory and the Redis store
 * run exactly this. Time is an injected clock that the tests advance; nothing sleeps.
 */
export const CLOCK_START = 1_800_000_000_000
/** The stores are built with this lifetime (PAR_TTL 60 s). */
export const LIFETIME_MS = 60_000

export type MakeStore = () => Promise<{ clock: ManualClock; store: PushedRequestStore }>

/** Awkward on purpose: a repeated parameter (RFC 8707 resource), an empty value, non-ASCII, a `__proto__` name. */
const params = {
  client_id: 'web',
  response_type: 'code',
  redirect_uri: 'https://app.example/cb',
  resource: ['https://a.example/', 'https://b.example/'],
  state: 'é ü \u2028 "quoted" &amp;',
  nonce: '',
  ['__proto__']: 'not a prototype',
}

export function requestStoreContract(t: Test, make: MakeStore): void {
  t.test('push, then the pusher takes it once, with its parameters as they came', async (t) => {
    const { store } = await make()
    const ref = await store.push({ clientId: 'web', params })
    t.match(ref, REFERENCE, '256 bits, base64url')
    const taken = await store.take(ref, 'web')
    t.equal(taken.status, 'ok')
    if (taken.status !== 'ok') return
    t.equal(taken.request.clientId, 'web')
    t.same(Object.entries(taken.request.params), Object.entries(params), 'arrays, empty values, odd names kept')
    t.same(await store.take(ref, 'web'), { status: 'not_found' }, 'single use')
  })

  t.test('each push gets its own reference', async (t) => {
    const { store } = await make()
    const refs = new Set<string>()
    for (let i = 0; i < 20; i++) refs.add(await store.push({ clientId: 'web', params: { i: String(i) } }))
    t.equal(refs.size, 20)
    for (const ref of refs) {
      const taken = await store.take(ref, 'web')
      t.equal(taken.status === 'ok' && taken.request.params.i, String([...refs].indexOf(ref)), 'each reference names its own request')
    }
  })

  t.test('another client is refused, and the request is spent all the same', async (t) => {
    const { store } = await make()
    const ref = await store.push({ clientId: 'web', params })
    t.same(await store.take(ref, 'spa'), { status: 'other_client' })
    t.same(await store.take(ref, 'web'), { status: 'not_found' }, 'a leaked request_uri is dead for its owner too')
  })

  t.test('expires with the injected clock', async (t) => {
    const { store, clock } = await make()
    const early = await store.push({ clientId: 'web', params })
    const late = await store.push({ clientId: 'web', params })
    clock.advance(LIFETIME_MS - 1)
    t.equal((await store.take(early, 'web')).status, 'ok', 'alive just before its lifetime ends')
    clock.advance(1)
    t.same(await store.take(late, 'web'), { status: 'expired' })
    t.same(await store.take(late, 'web'), { status: 'not_found' })
  })

  t.test('malformed and unknown references are not found', async (t) => {
    const { store } = await make()
    const ref = await store.push({ clientId: 'web', params })
    const flipped = (ref[0] === 'A' ? 'B' : 'A') + ref.slice(1)
    for (const bad of [flipped, '', ref.slice(1), `${ref}A`, `${ref.slice(0, 42)}*`, '{x}'.repeat(15), 'é'.repeat(43), `urn:ietf:params:oauth:request_uri:${ref}`]) {
      t.same(await store.take(bad, 'web'), { status: 'not_found' }, `${JSON.stringify(bad.slice(0, 20))}`)
    }
    t.equal((await store.take(ref, 'web')).status, 'ok', 'the genuine one is untouched by the attempts')
  })

  t.test('concurrent takes: exactly one wins', async (t) => {
    const { store } = await make()
    const ref = await store.push({ clientId: 'web', params })
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => store.take(ref, 'web')))
    t.equal(outcomes.filter((o) => o.status === 'ok').length, 1)
    t.equal(outcomes.filter((o) => o.status === 'not_found').length, 9)
  })
}
