import t from 'tap'
import { DEFAULT_CLOCK_START, dpopProof, makeDpopKey } from '@gatehouse/test-harness'
import { checkSenderConstraint, singleDpopHeader } from '../src/index.js'

/** RFC 9449 §7: which presentations of a token pass, given its binding and its proof. */

const NOW = Math.floor(DEFAULT_CLOCK_START / 1000)
const url = 'https://api.example.com/me'
const check = { method: 'GET', url, now: NOW, maxAgeSeconds: 60, clockToleranceSeconds: 5 }
const a = makeDpopKey('ES256')
const b = makeDpopKey('ES256')
const token = 'eyJ0eXAiOiJhdCtqd3QifQ.e30.c2ln'
const proofOf = (key = a, accessToken = token) => dpopProof({ key, htm: 'GET', htu: url, iat: NOW, accessToken })

t.test('a bearer token as Bearer needs no proof', async (t) => {
  t.equal(checkSenderConstraint({ scheme: 'Bearer', token }, undefined, undefined, check), null)
})

t.test('a bound token with a proof of its key passes and names the key', async (t) => {
  t.match(checkSenderConstraint({ scheme: 'DPoP', token }, a.jkt, proofOf(), check), { jkt: a.jkt })
})

t.test('a bound token downgraded to Bearer is refused, proof or not', async (t) => {
  t.throws(() => checkSenderConstraint({ scheme: 'Bearer', token }, a.jkt, undefined, check), { code: 'invalid_token', detail: 'dpop_downgrade' })
  t.throws(() => checkSenderConstraint({ scheme: 'Bearer', token }, a.jkt, proofOf(), check), { code: 'invalid_token', detail: 'dpop_downgrade' })
})

t.test('a token bound to key A with a proof of key B is refused', async (t) => {
  t.throws(() => checkSenderConstraint({ scheme: 'DPoP', token }, a.jkt, proofOf(b), check), { code: 'invalid_token', detail: 'dpop_jkt_mismatch' })
})

t.test('a proof for another token, no proof, or two proofs are invalid_dpop_proof', async (t) => {
  t.throws(() => checkSenderConstraint({ scheme: 'DPoP', token }, a.jkt, proofOf(a, 'other.token.x'), check), { code: 'invalid_dpop_proof', detail: 'ath' })
  t.throws(() => checkSenderConstraint({ scheme: 'DPoP', token }, a.jkt, undefined, check), { code: 'invalid_dpop_proof', detail: 'no proof' })
  t.throws(() => checkSenderConstraint({ scheme: 'DPoP', token }, a.jkt, [proofOf(), proofOf()], check), { code: 'invalid_dpop_proof', detail: 'dpop headers' })
})

t.test('an unbound token cannot be presented as DPoP', async (t) => {
  t.throws(() => checkSenderConstraint({ scheme: 'DPoP', token }, undefined, proofOf(), check), { code: 'invalid_token', detail: 'dpop_unbound' })
})

t.test('singleDpopHeader: none, one, more than one', async (t) => {
  t.equal(singleDpopHeader(undefined), null)
  t.equal(singleDpopHeader(''), null)
  t.equal(singleDpopHeader('x'), 'x')
  t.throws(() => singleDpopHeader(['x', 'y']), { code: 'invalid_dpop_proof' })
})
