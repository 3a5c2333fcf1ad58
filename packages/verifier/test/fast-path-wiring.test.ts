import { SignJWT } from 'jose'
import t from 'tap'
import { createVerifier } from '../src/index.js'
import { AUDIENCE, makeKey, startFakeIssuer, token, userClaims } from '@gatehouse/test-harness'
import { outcome } from './helpers/outcome.js'

/**
 * The Verifier's JWKS cache feeds the rulebook's node:crypto fast path: a token whose key the
 * JWKS holds is checked without WebCrypto (jose's route), for RSA and EC keys alike; a kid the
 * JWKS does not hold still goes through jose and its refetch.
 */

const rsa = await makeKey('rsa-key')
const ec = await makeKey('ec-key', 'ES256')
const issuer = await startFakeIssuer({ keys: [rsa, ec] })
t.teardown(() => issuer.close())
const v = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, algorithms: ['RS256', 'ES256'], cache: false })
t.teardown(() => v.close())
await v.ready()

// Count WebCrypto signature checks (jose's route) while the tests run.
const subtle = globalThis.crypto.subtle
const original = subtle.verify.bind(subtle)
let webCryptoChecks = 0
subtle.verify = ((...args: Parameters<typeof subtle.verify>) => {
  webCryptoChecks++
  return original(...args)
}) as typeof subtle.verify
t.teardown(() => {
  delete (subtle as { verify?: unknown }).verify
})

const now = (): number => Math.floor(Date.now() / 1000)

t.test('RS256 and ES256 tokens are verified with node:crypto, not WebCrypto', async (t) => {
  t.equal(await outcome(v, token({ key: rsa, issuer: issuer.issuer, now: now() })), 'accepted')
  const es = await new SignJWT(userClaims(issuer.issuer, now())).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: ec.kid }).sign(ec.privateKey)
  t.equal(await outcome(v, es), 'accepted')
  const forged = `${es.slice(0, es.lastIndexOf('.'))}.${'A'.repeat(86)}`
  t.equal(await outcome(v, forged), 'bad_signature')
  t.equal(webCryptoChecks, 0)
})

t.test('an unknown kid still goes through jose, which refetches the JWKS', async (t) => {
  const fetches = issuer.counts.jwks
  t.equal(await outcome(v, token({ key: rsa, issuer: issuer.issuer, now: now(), header: { kid: 'rotated-in' } })), 'unknown_kid')
  t.equal(issuer.counts.jwks, fetches + 1, 'one refetch for the unknown kid')
})

t.test('the check stays when WebCrypto is not used: a token signed by another key under our kid is refused', async (t) => {
  const attacker = await makeKey(rsa.kid)
  t.equal(await outcome(v, token({ key: attacker, issuer: issuer.issuer, now: now() })), 'bad_signature')
  t.equal(webCryptoChecks, 0)
})
