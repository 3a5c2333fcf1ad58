import t from 'tap'
import { InvalidDpopProof } from '@gatehouse/service-kit'
import { DpopNonces } from '@gatehouse/verifier'
import { ManualClock } from '@gatehouse/test-harness'
import { checkCodeBinding, confirmationKey, dpopNonceSecret, tokenType } from '../../src/dpop/proofs.js'

t.test('checkCodeBinding (RFC 9449 §10): a bound code needs a proof of its key', async (t) => {
  t.doesNotThrow(() => checkCodeBinding(undefined, null), 'an unbound code, no proof')
  t.doesNotThrow(() => checkCodeBinding(undefined, { jkt: 'a' }), 'an unbound code, a proof')
  t.doesNotThrow(() => checkCodeBinding('a', { jkt: 'a' }), 'the right key')
  t.throws(() => checkCodeBinding('a', null), InvalidDpopProof, 'no proof')
  t.throws(() => checkCodeBinding('a', { jkt: 'b' }), { code: 'invalid_dpop_proof', statusCode: 400 }, 'another key')
})

t.test('tokenType', async (t) => {
  t.equal(tokenType(undefined), 'Bearer')
  t.equal(tokenType({ jkt: 'x' }), 'DPoP')
})

t.test('the nonce secret: HKDF of COOKIE_SECRET, the same on every replica, never the secret itself', async (t) => {
  const a = dpopNonceSecret('cookie-secret-0123456789abcdefghijklmnop')
  t.equal(a.length, 32)
  t.same(a, dpopNonceSecret('cookie-secret-0123456789abcdefghijklmnop'))
  t.not(a.toString('hex'), dpopNonceSecret('cookie-secret-0123456789abcdefghijklmnoq').toString('hex'))
  t.notOk(a.includes(Buffer.from('cookie-secret')))
  const clock = new ManualClock()
  const n1 = new DpopNonces(a, clock.now)
  const n2 = new DpopNonces(dpopNonceSecret('cookie-secret-0123456789abcdefghijklmnop'), clock.now)
  t.ok(n2.valid(n1.current()), 'replicas agree')
})

t.test('confirmationKey: bound, unbound, malformed', async (t) => {
  t.equal(confirmationKey({}), undefined)
  t.equal(confirmationKey({ cnf: { jkt: 'abc' } }), 'abc')
  for (const cnf of [null, 'abc', [], { jkt: 5 }, { jkt: '' }, {}]) t.equal(confirmationKey({ cnf }), null, JSON.stringify(cnf))
})

t.test('DPOP_REQUIRE_NONCE: true or false (default false); anything else stops the start', async (t) => {
  const { configProblems } = await import('../helpers.js')
  const { loadConfig } = await import('../../src/config.js')
  t.equal((await loadConfig({})).dpopRequireNonce, false)
  t.equal((await loadConfig({ DPOP_REQUIRE_NONCE: 'true' })).dpopRequireNonce, true)
  const problems = await configProblems({ DPOP_REQUIRE_NONCE: 'yes' })
  t.ok(problems.some((p) => p.includes('DPOP_REQUIRE_NONCE')), problems.join('; '))
})
