import { createPublicKey, randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { SignJWT, exportSPKI } from 'jose'
import t from 'tap'
import { createVerifier, type Verifier, type VerifierOptions } from '../src/index.js'
import { AUDIENCE, makeKey, ManualClock, rawSign, serviceClaims, startFakeIssuer, token, unsigned, userClaims } from '@gatehouse/test-harness'
import { outcome } from './helpers/outcome.js'

/** Security regression tests for the token rules of DESIGN §4 (RFC 8725, RFC 9068). */

const key = await makeKey()
const attacker = await makeKey()
const issuer = await startFakeIssuer({ keys: [key] })
t.teardown(() => issuer.close())
const clock = new ManualClock(Date.now())

function verifier(options: Partial<VerifierOptions> = {}): Verifier {
  const v = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now, cache: false, ...options })
  t.teardown(() => v.close())
  return v
}

const v = verifier()
const now = (): number => clock.seconds()
const base = { key, issuer: issuer.issuer }

t.test('a well-formed token is accepted, with its context', async (t) => {
  const auth = await v.verify(token({ ...base, now: now() }))
  t.equal(auth.subject, 'user-alice')
  t.equal(auth.clientId, 'web-app')
  t.same(auth.scopes, ['openid', 'documents:read'])
  t.same(auth.roles, ['admin'])
  t.equal(auth.sid, 'family-1')
  t.equal(auth.kind, 'user')
  t.ok(Object.isFrozen(auth) && Object.isFrozen(auth.claims))
  const service = await v.verify(rawSign({ alg: 'RS256', typ: 'at+jwt', kid: key.kid }, serviceClaims(issuer.issuer, now()), key))
  t.equal(service.kind, 'service')
  t.same(service.roles, [])
  t.equal(service.sid, undefined)
})

t.test('alg "none" is refused', async (t) => {
  const claims = userClaims(issuer.issuer, now())
  t.equal(await outcome(v, unsigned({ alg: 'none', typ: 'at+jwt', kid: key.kid }, claims)), 'malformed')
  t.equal(await outcome(v, unsigned({ alg: 'none', typ: 'at+jwt', kid: key.kid }, claims, 'AAAA')), 'alg_not_allowed')
  t.equal(await outcome(v, unsigned({ alg: 'NONE', typ: 'at+jwt', kid: key.kid }, claims, 'AAAA')), 'alg_not_allowed')
})

t.test('HS256 signed with the RSA public key bytes is refused (algorithm confusion)', async (t) => {
  const claims = userClaims(issuer.issuer, now())
  const pem = await exportSPKI(key.publicKey)
  const der = createPublicKey(pem).export({ type: 'spki', format: 'der' })
  for (const secret of [new TextEncoder().encode(pem), new Uint8Array(der), new TextEncoder().encode(JSON.stringify(key.publicJwk))]) {
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: key.kid }).sign(secret)
    t.equal(await outcome(v, forged), 'alg_not_allowed')
  }
})

t.test('an algorithm outside the allow-list is refused even when the signature is valid', async (t) => {
  const ps = verifier({ algorithms: ['PS256'] })
  t.equal(await outcome(ps, token({ ...base, now: now() })), 'alg_not_allowed')
})

t.test('RS256 by another key with a copied kid is refused', async (t) => {
  t.equal(await outcome(v, token({ key: attacker, issuer: issuer.issuer, now: now(), header: { kid: key.kid } })), 'bad_signature')
})

t.test('a tampered payload is refused', async (t) => {
  const good = token({ ...base, now: now() })
  const [h, , s] = good.split('.')
  const evil = Buffer.from(JSON.stringify({ ...userClaims(issuer.issuer, now()), roles: ['admin', 'root'] })).toString('base64url')
  t.equal(await outcome(v, `${h}.${evil}.${s}`), 'bad_signature')
})

t.test('jku, x5u, jwk, x5c and crit headers are never honoured', async (t) => {
  // Each token is signed by the real key, so it would pass were the header ignored:
  // the verifier must refuse the header itself, and never fetch what it points to.
  const lure = Fastify({ logger: false })
  let lureHits = 0
  lure.get('/*', async () => {
    lureHits++
    return { keys: [attacker.publicJwk] }
  })
  await lure.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => lure.close())
  const addr = lure.server.address()
  const lureUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/jwks.json`
  const headers: Record<string, unknown>[] = [
    { jku: lureUrl },
    { x5u: lureUrl },
    { jwk: attacker.publicJwk },
    { x5c: ['MIIB'] },
    // jose itself understands the b64 extension (RFC 7797): only our rule stops it here.
    { crit: ['b64'], b64: true },
  ]
  for (const header of headers) {
    t.equal(await outcome(v, token({ ...base, now: now(), header })), 'forbidden_header', JSON.stringify(Object.keys(header)))
  }
  // An extension nobody understands: jose refuses it before our rule is reached.
  t.equal(await outcome(v, token({ ...base, now: now(), header: { crit: ['exp'] } })), 'malformed')
  // And the embedded-key attack proper: signed by the attacker, carrying the attacker's key.
  t.equal(
    await outcome(v, token({ key: attacker, issuer: issuer.issuer, now: now(), header: { kid: attacker.kid, jwk: attacker.publicJwk } })),
    'forbidden_header',
  )
  t.equal(lureHits, 0, 'nothing a token points to is fetched')
})

t.test('typ must be at+jwt', async (t) => {
  t.equal(await outcome(v, token({ ...base, now: now(), header: { typ: 'JWT' } })), 'wrong_typ')
  t.equal(await outcome(v, token({ ...base, now: now(), header: { typ: 'id+jwt' } })), 'wrong_typ')
  t.equal(await outcome(v, token({ ...base, now: now(), header: { typ: undefined } })), 'wrong_typ')
  t.equal(await outcome(v, token({ ...base, now: now(), header: { typ: 'application/at+jwt' } })), 'accepted', 'RFC 9068 §2.1 allows the long form')
})

t.test('iss must match exactly', async (t) => {
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { iss: `${issuer.issuer}/` } })), 'wrong_issuer')
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { iss: 'https://evil.example' } })), 'wrong_issuer')
  t.equal(await outcome(v, token({ ...base, now: now(), omit: ['iss'] })), 'missing_claim')
})

t.test('aud must contain the audience', async (t) => {
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { aud: 'api://other' } })), 'wrong_audience')
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { aud: ['api://other', 'api://x'] } })), 'wrong_audience')
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { aud: ['api://other', AUDIENCE] } })), 'accepted')
  t.equal(await outcome(v, token({ ...base, now: now(), omit: ['aud'] })), 'missing_claim')
})

t.test('exp is required and checked at the tolerance boundary', async (t) => {
  const start = clock.now()
  t.teardown(() => clock.set(start))
  const exp = now() + 60
  const jwt = token({ ...base, now: now(), claims: { exp } })
  t.equal(await outcome(v, token({ ...base, now: now(), omit: ['exp'] })), 'missing_claim')
  clock.set(exp * 1000 + 29_999) // 29.999 s past exp, tolerance 30 s
  t.equal(await outcome(v, jwt), 'accepted')
  clock.set(exp * 1000 + 30_000)
  t.equal(await outcome(v, jwt), 'expired')
  const strict = verifier({ clockTolerance: 0 })
  clock.set(exp * 1000 - 1)
  t.equal(await outcome(strict, jwt), 'accepted')
  clock.set(exp * 1000)
  t.equal(await outcome(strict, jwt), 'expired')
})

t.test('nbf and iat are checked with the clock tolerance', async (t) => {
  const start = clock.now()
  t.teardown(() => clock.set(start))
  const at = now()
  const early = token({ ...base, now: at, claims: { nbf: at + 100, iat: at } })
  clock.set((at + 69) * 1000) // 31 s before nbf
  t.equal(await outcome(v, early), 'not_yet_valid')
  clock.set((at + 70) * 1000) // 30 s before nbf
  t.equal(await outcome(v, early), 'accepted')

  clock.set(at * 1000)
  t.equal(await outcome(v, token({ ...base, now: at, claims: { iat: at + 31 } })), 'issued_in_future')
  t.equal(await outcome(v, token({ ...base, now: at, claims: { iat: at + 30 } })), 'accepted')
  t.equal(await outcome(v, token({ ...base, now: at, omit: ['iat'] })), 'missing_claim')
  t.equal(await outcome(v, token({ ...base, now: at, claims: { iat: 'yesterday' } })), 'invalid_claim')
})

t.test('other RFC 9068 claims are required and typed', async (t) => {
  for (const claim of ['sub', 'client_id', 'jti']) {
    t.equal(await outcome(v, token({ ...base, now: now(), omit: [claim] })), 'missing_claim', claim)
  }
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { roles: 'admin' } })), 'invalid_claim')
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { scope: ['a'] } })), 'invalid_claim')
  t.equal(await outcome(v, token({ ...base, now: now(), claims: { sid: 42 } })), 'invalid_claim')
})

t.test('an oversized token is refused before parsing', async (t) => {
  const fetchesBefore = v.stats().jwksFetches
  const padded = token({ ...base, now: now(), claims: { pad: 'x'.repeat(9000) } })
  t.equal(await outcome(verifier({ maxTokenLength: 64 * 1024 }), padded), 'accepted', 'validly signed: only its size is wrong')
  t.equal(await outcome(v, padded), 'oversized')
  t.equal(await outcome(v, 'a'.repeat(8193)), 'oversized')
  t.equal(v.stats().jwksFetches, fetchesBefore)
})

t.test('malformed tokens are invalid_token, never a crash', async (t) => {
  for (const bad of ['', 'abc', 'a.b', 'a.b.c.d', '..', 'a..c', 'é.b.c', `${randomUUID()}.x.y`, 'eyJhbGciOiJSUzI1NiJ9.e30.AAAA']) {
    const result = await outcome(v, bad)
    t.not(result, 'accepted', JSON.stringify(bad))
    t.notMatch(result, / /, `${JSON.stringify(bad)} -> ${result}: an invalid_token reason, not another status`)
  }
  t.equal(await outcome(v, unsigned({ alg: 'RS256', typ: 'at+jwt', kid: key.kid }, userClaims(issuer.issuer, now()), 'AAAA')), 'bad_signature')
  t.equal(await outcome(v, token({ ...base, now: now(), header: { kid: undefined } })), 'missing_kid')
})

t.test('options are validated up front, naming the option', async (t) => {
  t.throws(() => createVerifier({ issuer: 'not a url', audience: AUDIENCE }), /"issuer"/)
  t.throws(() => createVerifier({ issuer: issuer.issuer, audience: '' }), /"audience"/)
  t.throws(() => createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, algorithms: ['HS256' as 'RS256'] }), /"algorithms"/)
  t.throws(() => createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, algorithms: ['none' as 'RS256'] }), /"algorithms"/)
  t.throws(() => createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, clockTolerance: -1 }), /"clockTolerance"/)
  t.throws(() => createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, redis: 'http://x' }), /"redis"/)
  t.throws(() => createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, jwks: { minTtlMs: 10, maxTtlMs: 5 } }), /"jwks.maxTtlMs"/)
})
