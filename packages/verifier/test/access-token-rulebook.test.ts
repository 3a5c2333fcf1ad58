import { createLocalJWKSet } from 'jose'
import t from 'tap'
import { ANY_AUDIENCE, AccessTokenRulebook, type AccessTokenRules } from '../src/index.js'
import { AUDIENCE, makeKey, ManualClock, rawSign, token } from '@gatehouse/test-harness'
import { outcome } from './helpers/outcome.js'

/**
 * The rulebook on its own, with a local key set (as the auth service runs it with its key ring):
 * the same checks the Verifier makes with the remote JWKS.
 */

const ISSUER = 'https://issuer.test'
const key = await makeKey()
const attacker = await makeKey(key.kid)
const keys = createLocalJWKSet({ keys: [key.publicJwk] })
const clock = new ManualClock(Date.now())
const now = (): number => clock.seconds()
const base = { key, issuer: ISSUER }

function rulebook(rules: Partial<AccessTokenRules> = {}): { verify(token: string): Promise<unknown> } {
  const r = new AccessTokenRulebook(keys, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'], clockTolerance: 0, maxTokenLength: 8192, ...rules })
  return { verify: (jwt) => r.verify(jwt, clock.now()) }
}

t.test('a local key set: accepted, with the claims and the header', async (t) => {
  const r = new AccessTokenRulebook(keys, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'], clockTolerance: 0, maxTokenLength: 8192 })
  const { auth, header } = await r.verify(token({ ...base, now: now() }), clock.now())
  t.equal(auth.subject, 'user-alice')
  t.equal(auth.claims.client_id, 'web-app')
  t.equal(header.kid, key.kid)
})

t.test('every rule, by its reason', async (t) => {
  const strict = rulebook()
  const n = now()
  const cases: [string, string, string][] = [
    ['signed by another key under our kid', token({ key: attacker, issuer: ISSUER, now: n }), 'bad_signature'],
    ['an unknown kid', token({ ...base, now: n, header: { kid: 'nope' } }), 'unknown_kid'],
    ['no kid', token({ ...base, now: n, header: { kid: undefined } }), 'missing_kid'],
    ['jku', token({ ...base, now: n, header: { jku: 'https://evil.test/jwks' } }), 'forbidden_header'],
    ['typ JWT (an ID token)', token({ ...base, now: n, header: { typ: 'JWT' } }), 'wrong_typ'],
    ['another issuer', token({ ...base, now: n, claims: { iss: 'https://evil.test' } }), 'wrong_issuer'],
    ['another audience', token({ ...base, now: n, claims: { aud: 'api://other' } }), 'wrong_audience'],
    ['expired', token({ ...base, now: n - 901 }), 'expired'],
    ['not yet valid', token({ ...base, now: n, claims: { nbf: n + 60 } }), 'not_yet_valid'],
    ['issued in the future', token({ ...base, now: n, claims: { iat: n + 60 } }), 'issued_in_future'],
    ['no client_id', token({ ...base, now: n, omit: ['client_id'] }), 'missing_claim'],
    ['no jti', token({ ...base, now: n, omit: ['jti'] }), 'missing_claim'],
    ['a non-string sid', token({ ...base, now: n, claims: { sid: 7 } }), 'invalid_claim'],
    ['too long', 'a'.repeat(8193), 'oversized'],
    ['not a compact JWS', 'a.b', 'malformed'],
    ['empty', '', 'malformed'],
  ]
  for (const [name, jwt, reason] of cases) t.equal(await outcome(strict, jwt), reason, name)
  t.equal(await outcome(rulebook({ algorithms: ['PS256'] }), token({ ...base, now: n })), 'alg_not_allowed')
  t.equal(await outcome(strict, rawSign({ alg: 'RS256', typ: 'at+jwt', kid: key.kid }, { iss: ISSUER }, key)), 'missing_claim')
})

t.test('ANY_AUDIENCE: any aud is accepted (the caller judges it), but aud must be there', async (t) => {
  const any = rulebook({ audience: ANY_AUDIENCE })
  t.equal(await outcome(any, token({ ...base, now: now(), claims: { aud: 'api://other' } })), 'accepted')
  t.equal(await outcome(any, token({ ...base, now: now(), claims: { aud: ['a', 'b'] } })), 'accepted')
  t.equal(await outcome(any, token({ ...base, now: now(), omit: ['aud'] })), 'missing_claim')
})

t.test('tolerance: exp and nbf by clockTolerance; a future iat by issuedAtLeeway when given', async (t) => {
  const n = now()
  t.equal(await outcome(rulebook({ clockTolerance: 30 }), token({ ...base, now: n - 910 })), 'accepted', 'expired 10 s ago, within 30 s')
  t.equal(await outcome(rulebook({ clockTolerance: 0 }), token({ ...base, now: n - 900 })), 'expired', 'exp == now, no tolerance')
  t.equal(await outcome(rulebook({ issuedAtLeeway: 5 }), token({ ...base, now: n, claims: { iat: n + 5 } })), 'accepted')
  t.equal(await outcome(rulebook({ issuedAtLeeway: 5 }), token({ ...base, now: n, claims: { iat: n + 6 } })), 'issued_in_future')
  t.equal(await outcome(rulebook({ clockTolerance: 10 }), token({ ...base, now: n, claims: { iat: n + 10 } })), 'accepted')
})
