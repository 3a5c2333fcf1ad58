import { constants, createHmac, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto'
import fc from 'fast-check'
import { importJWK, jwtVerify, type CryptoKey, type JWK, type JWTHeaderParameters, type JWTVerifyOptions } from 'jose'
import t from 'tap'
import { isOAuthError } from '@gatehouse/service-kit'
import { ANY_AUDIENCE, AccessTokenRulebook, JwsVerifyKey, REQUIRED_CLAIMS, checkTokenHeader, toInvalidToken, type AccessTokenRules } from '../src/index.js'
import { toAuthContext } from '../src/auth-context.js'
import { invalidToken } from '../src/errors.js'

/**
 * The rulebook's node:crypto fast path against jose's `jwtVerify` configured as the rulebook
 * configures it: thousands of generated tokens, valid and not (headers, algorithms, kids,
 * signatures, encodings, times around the tolerance, issuers, audiences, types, `crit`, huge
 * numbers, payloads that are not objects, unicode), and for each one the same verdict: the same
 * refusal reason, or acceptance with the same claims and header. Seeded: a failure replays.
 */

const ISSUER = 'https://issuer.test'
const AUDIENCE = 'api://documents'
/** A fixed instant, not on a whole second, so that flooring to seconds is exercised. */
const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0) + 437
const NOW = Math.floor(NOW_MS / 1000)

// The issuer's keys (the JWKS) and an attacker's key under the same kid.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')
const attackerRsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const attackerEc = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const attackerEd = generateKeyPairSync('ed25519')
const jwkOf = (key: KeyObject, kid: string): JWK => ({ ...(key.export({ format: 'jwk' }) as JWK), kid })
const JWKS: readonly { kid: string; jwk: JWK; algs: readonly string[] }[] = [
  { kid: 'rsa-1', jwk: jwkOf(rsa.publicKey, 'rsa-1'), algs: ['RS256', 'PS256', 'RS384'] },
  { kid: 'ec-1', jwk: jwkOf(ec.publicKey, 'ec-1'), algs: ['ES256'] },
  { kid: 'ed-1', jwk: jwkOf(ed.publicKey, 'ed-1'), algs: ['EdDSA', 'Ed25519'] },
]

/** kid -> alg -> the key twice, as the verifier's JWKS cache holds it. */
const table = new Map<string, Map<string, { crypto: CryptoKey; node: JwsVerifyKey }>>()
for (const { kid, jwk, algs } of JWKS) {
  const byAlg = new Map<string, { crypto: CryptoKey; node: JwsVerifyKey }>()
  for (const alg of algs) {
    const node = JwsVerifyKey.fromJwk(jwk as Parameters<typeof JwsVerifyKey.fromJwk>[0], alg)
    if (node === undefined) throw new Error(`${kid}/${alg}: node:crypto cannot take the key`)
    byAlg.set(alg, { crypto: (await importJWK(jwk, alg)) as CryptoKey, node })
  }
  table.set(kid, byAlg)
}
const joseKeys = (header: JWTHeaderParameters): CryptoKey => {
  const key = table.get(header.kid as string)?.get(header.alg)?.crypto
  if (key === undefined) throw invalidToken('unknown_kid')
  return key
}
let nodeLookups = 0
const nodeKeys = (kid: string, alg: string): JwsVerifyKey | undefined => {
  nodeLookups++
  return table.get(kid)?.get(alg)?.node
}

/** Two configurations: the verifier's (with more algorithms), and the auth service's (any audience, its own iat leeway). */
const CONFIGS: readonly AccessTokenRules[] = [
  { issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'], clockTolerance: 30, maxTokenLength: 8192 },
  { issuer: ISSUER, audience: ANY_AUDIENCE, algorithms: ['RS256'], clockTolerance: 0, issuedAtLeeway: 5, maxTokenLength: 2048 },
]
const fast = CONFIGS.map((rules) => new AccessTokenRulebook(joseKeys, rules, nodeKeys))
const joseRoute = CONFIGS.map((rules) => new AccessTokenRulebook(joseKeys, rules))

/** An independent statement of "canonical unpadded base64url": decoding and encoding again gives the same text. */
function canonical(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment
}

interface Verdict {
  outcome: string
  claims?: unknown
  header?: unknown
}

/**
 * jose's `jwtVerify` with the options the rulebook gives it, the rulebook's checks before any
 * parsing (size, three segments, canonical base64url) and its `iat` rule after: the reference.
 */
async function reference(rules: AccessTokenRules, jwt: string): Promise<Verdict> {
  if (jwt.length > rules.maxTokenLength) return { outcome: 'oversized' }
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(jwt) || !jwt.split('.').every(canonical)) return { outcome: 'malformed' }
  const options: JWTVerifyOptions = {
    algorithms: [...rules.algorithms],
    issuer: rules.issuer,
    ...(rules.audience === ANY_AUDIENCE ? {} : { audience: rules.audience }),
    typ: 'at+jwt',
    clockTolerance: rules.clockTolerance,
    requiredClaims: [...REQUIRED_CLAIMS],
    currentDate: new Date(NOW_MS),
  }
  try {
    const { payload, protectedHeader } = await jwtVerify(
      jwt,
      (header) => {
        checkTokenHeader(header)
        return joseKeys(header)
      },
      options,
    )
    if ((payload.iat as number) > NOW + (rules.issuedAtLeeway ?? rules.clockTolerance)) return { outcome: 'issued_in_future' }
    const auth = toAuthContext(payload)
    return { outcome: 'accepted', claims: auth.claims, header: protectedHeader }
  } catch (err) {
    return { outcome: reasonOf(toInvalidToken(err)) }
  }
}

function reasonOf(err: unknown): string {
  if (!isOAuthError(err)) throw err
  return err.code === 'invalid_token' ? (err.detail ?? 'no detail') : `${err.statusCode} ${err.code}`
}

async function verdictOf(rulebook: AccessTokenRulebook, jwt: string): Promise<Verdict> {
  try {
    const { auth, header } = await rulebook.verify(jwt, NOW_MS)
    return { outcome: 'accepted', claims: auth.claims, header }
  } catch (err) {
    return { outcome: reasonOf(err) }
  }
}

// ---- Token generation --------------------------------------------------------------------

/** Marks a member to leave out of the JSON. */
const ABSENT = Symbol('absent')
/** Stand-ins replaced in the JSON text by numbers JSON.stringify cannot write. */
const HUGE = '\u0000huge\u0000'
const NEG_HUGE = '\u0000neghuge\u0000'

/** Mostly `usual`, sometimes one of `others`. */
function mostly<T>(usual: T, others: readonly T[], weight = 6): fc.Arbitrary<T> {
  return fc.oneof({ weight, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom(...others) })
}

const anyValue = [null, true, 0, 1.5, -1, '', 'x', [], {}, ['x'], 'é✓😀', HUGE] as const
const times = (tolerance: number): number[] => [-tolerance - 1, -tolerance, -tolerance + 1, -1, 0, 1, tolerance - 1, tolerance, tolerance + 1, 5, 6, 899, 900]

const headerArb = fc.record({
  alg: mostly<unknown>(null, ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519', 'RS384', 'RS512', 'ES384', 'HS256', 'none', 'NONE', '', 1, null, ABSENT], 2),
  typ: mostly<unknown>('at+jwt', ['application/at+jwt', 'AT+JWT', 'Application/At+Jwt', 'JWT', 'jwt', 'at+jwt ', 'x/at+jwt', 'application/jwt', 'at+jwt/x', '', 1, null, ABSENT]),
  kid: mostly<unknown>(null, ['rsa-1', 'ec-1', 'ed-1', 'nope', '', 'k'.repeat(257), 'é😀', 1, null, ABSENT], 4),
  extra: mostly<Record<string, unknown>>({}, [
    { crit: ['b64'], b64: true },
    { crit: ['b64'], b64: false },
    { crit: ['b64'] },
    { crit: ['b64'], b64: 'yes' },
    { crit: ['exp'], exp: 1 },
    { crit: ['b64', 'b64'], b64: true },
    { crit: [] },
    { crit: 'b64' },
    { crit: null },
    { crit: [''] },
    { b64: false },
    { jku: 'https://evil.test/jwks' },
    { x5u: 'https://evil.test/cert' },
    { jwk: { kty: 'RSA' } },
    { x5c: ['MIIB'] },
    { jku: null },
    { cty: 'JWT' },
    { note: 'é✓😀\u2028' },
    { zip: 'DEF' },
  ]),
})

function claimsArb(tolerance: number) {
  const time = (usual: number): fc.Arbitrary<unknown> =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constant(usual) },
      { weight: 3, arbitrary: fc.constantFrom(...times(tolerance)).map((d) => NOW + d) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(HUGE, NEG_HUGE, 1e308, -1e308, NOW + 0.5, NOW - 0.5, `${NOW}`, null, ABSENT, [], true) },
    )
  return fc.record({
    iss: mostly<unknown>(ISSUER, [`${ISSUER}/`, 'https://evil.test', ISSUER.toUpperCase(), 1, null, [ISSUER], ABSENT]),
    aud: mostly<unknown>(AUDIENCE, [[AUDIENCE], ['api://x', AUDIENCE], ['api://x'], [], 'api://x', AUDIENCE.toUpperCase(), 1, null, [1, AUDIENCE], [[AUDIENCE]], ABSENT]),
    sub: mostly<unknown>('user-alice', ['', 1, null, 'é😀', ABSENT]),
    client_id: mostly<unknown>('web-app', ['user-alice', '', 1, null, ABSENT]),
    jti: mostly<unknown>('jti-1', ['', 1, null, ABSENT]),
    exp: time(NOW + 900),
    iat: time(NOW),
    nbf: mostly<unknown>(ABSENT, [...times(tolerance).map((d) => NOW + d), HUGE, NEG_HUGE, null, 'now']),
    scope: mostly<unknown>('openid documents:read', ['', ' a  b ', 1, ['a'], null, ABSENT]),
    roles: mostly<unknown>(ABSENT, [['admin'], [], 'admin', [1], null]),
    sid: mostly<unknown>(ABSENT, ['family-1', '', 1, null]),
    auth_time: mostly<unknown>(ABSENT, [NOW, 'now', null]),
    cnf: mostly<unknown>(ABSENT, [{ jkt: 'A'.repeat(43) }, { jkt: 'short' }, { x5t: 'x' }, 'x', null, []]),
    act: mostly<unknown>(ABSENT, [{ sub: 'gateway' }, { sub: 'a', act: { sub: 'b' } }, { sub: '' }, { act: {} }, 'x', null]),
    extra: mostly<unknown>(ABSENT, anyValue),
  })
}

/** JSON text of an object, members marked ABSENT left out, the stand-ins replaced by 1e400 / -1e400 (±Infinity once parsed). */
function json(value: Record<string, unknown>): string {
  const members = Object.fromEntries(Object.entries(value).filter(([, v]) => v !== ABSENT))
  return JSON.stringify(members).replaceAll(JSON.stringify(HUGE), '1e400').replaceAll(JSON.stringify(NEG_HUGE), '-1e400')
}

/** Segment bytes: usually the JSON, sometimes something else. */
function segmentArb(jsonText: string): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 20, arbitrary: fc.constant(Buffer.from(jsonText)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        Buffer.from('[]'),
        Buffer.from('"x"'),
        Buffer.from('1'),
        Buffer.from('null'),
        Buffer.from('not json'),
        Buffer.from(`\uFEFF${jsonText}`), // a BOM: jose's decoder drops it
        Buffer.from(` ${jsonText} `),
        Buffer.concat([Buffer.from(jsonText.slice(0, -1)), Buffer.from([0xff]), Buffer.from('}')]), // not UTF-8
        Buffer.from(jsonText.replace('{', '{"__proto__":{"crit":["b64"]},')),
        Buffer.from(jsonText.replace('{', '{"iss":"https://evil.test",')), // a duplicate member: the last wins in JSON.parse
      ),
    },
  )
}

type Signer = 'issuer' | 'attacker' | 'hs256-public-key' | 'garbage' | 'empty-ish' | 'other-alg'

/** Signs as `alg` says with the key of the alg's family (the kid is chosen apart, so it may name another key). */
function signature(alg: unknown, input: string, signer: Signer): Buffer {
  const data = Buffer.from(input, 'latin1')
  if (signer === 'garbage') return Buffer.from(createHmac('sha256', 'x').update(input).digest().subarray(0, 17 + (input.length % 300)))
  if (signer === 'empty-ish') return Buffer.from([0])
  if (signer === 'hs256-public-key') return createHmac('sha256', rsa.publicKey.export({ type: 'spki', format: 'pem' })).update(data).digest()
  const effective = signer === 'other-alg' ? (alg === 'RS256' ? 'PS256' : 'RS256') : alg
  const rsaKey = signer === 'attacker' ? attackerRsa.privateKey : rsa.privateKey
  const ecKey = signer === 'attacker' ? attackerEc.privateKey : ec.privateKey
  switch (effective) {
    case 'RS256':
    case 'RS384':
    case 'RS512':
      return nodeSign(`sha${effective.slice(2)}`, data, rsaKey)
    case 'PS256':
      return nodeSign('sha256', data, { key: rsaKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    case 'ES256':
    case 'ES384':
      return nodeSign('sha256', data, { key: ecKey, dsaEncoding: 'ieee-p1363' })
    case 'EdDSA':
    case 'Ed25519':
      return nodeSign(null, data, signer === 'attacker' ? attackerEd.privateKey : ed.privateKey)
    default:
      return createHmac('sha256', 'secret').update(data).digest()
  }
}

/** Changes to the finished token's text. */
type Mangle = (jwt: string) => string
const mangles: readonly [string, Mangle][] = [
  ['none', (j) => j],
  ['non-canonical last character', (j) => {
    // A character whose trailing bits are set where the segment's length leaves bits over.
    const [h, p, s] = j.split('.') as [string, string, string]
    const bump = (seg: string): string => (seg.length % 4 === 0 ? seg : seg.slice(0, -1) + (seg.endsWith('B') ? 'C' : seg.endsWith('_') ? '-' : 'B'))
    return [bump(h), p, bump(s)].join('.')
  }],
  ['padding', (j) => `${j}=`],
  ['whitespace', (j) => j.replace('.', ' .')],
  ['leading space', (j) => ` ${j}`],
  ['newline', (j) => `${j}\n`],
  ['a fourth segment', (j) => `${j}.AAAA`],
  ['two segments', (j) => j.slice(0, j.lastIndexOf('.'))],
  ['an empty signature', (j) => j.slice(0, j.lastIndexOf('.') + 1)],
  ['signature cut by one', (j) => j.slice(0, -1)],
  ['signature cut by two', (j) => j.slice(0, -2)],
  ['signature cut by four', (j) => j.slice(0, -4)],
  ['signature and four more', (j) => `${j}AAAA`],
  ['a changed payload character', (j) => {
    const i = j.indexOf('.') + 5
    return j.slice(0, i) + (j[i] === 'A' ? 'B' : 'A') + j.slice(i + 1)
  }],
  ['base64 alphabet', (j) => j.replace(/-/g, '+').replace(/_/g, '/')],
  ['doubled dot', (j) => j.replace('.', '..')],
]

const tokenArb = fc
  .record({ config: fc.nat(CONFIGS.length - 1), pair: fc.nat(3), header: headerArb, signer: mostly<Signer>('issuer', ['attacker', 'hs256-public-key', 'garbage', 'empty-ish', 'other-alg'], 8) })
  .chain(({ config, pair, header, signer }) =>
    fc.record({
      config: fc.constant(config),
      // The auth service's configuration allows RS256 alone: its tokens mostly use it.
      pair: fc.constant(config === 1 ? 0 : pair),
      header: fc.constant(header),
      signer: fc.constant(signer),
      claims: claimsArb(CONFIGS[config]!.clockTolerance),
      mangle: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: mangles.length - 1 }) }),
      pad: fc.oneof({ weight: 30, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1500, 7000, 9000) }),
    }),
  )
  .chain((g) => {
    // alg and kid that fit each other unless the generator chose otherwise.
    const pairs = [['RS256', 'rsa-1'], ['PS256', 'rsa-1'], ['ES256', 'ec-1'], ['EdDSA', 'ed-1']] as const
    const [alg0, kid0] = pairs[g.pair]!
    const header: Record<string, unknown> = { alg: g.header.alg ?? alg0, typ: g.header.typ, kid: g.header.kid ?? kid0, ...g.header.extra }
    const claims: Record<string, unknown> = { ...g.claims }
    if (g.pad > 0) claims.pad = 'p'.repeat(g.pad)
    return fc.record({ g: fc.constant(g), header: segmentArb(json(header)), claims: segmentArb(json(claims)), alg: fc.constant(header.alg) })
  })
  .map(({ g, header, claims, alg }) => {
    const input = `${header.toString('base64url')}.${claims.toString('base64url')}`
    const jwt = `${input}.${signature(alg, input, g.signer).toString('base64url')}`
    const [name, mangle] = mangles[g.mangle]!
    return { config: g.config, jwt: mangle(jwt), mangled: name }
  })

t.test('the fast path and jose give every generated token the same verdict', async (t) => {
  const seen = new Map<string, number>()
  let fastLookups = 0
  await fc.assert(
    fc.asyncProperty(tokenArb, async ({ config, jwt }) => {
      const rules = CONFIGS[config]!
      const before = nodeLookups
      const [expected, viaJose, actual] = [await reference(rules, jwt), await verdictOf(joseRoute[config]!, jwt), await verdictOf(fast[config]!, jwt)]
      if (nodeLookups > before) fastLookups++
      seen.set(actual.outcome, (seen.get(actual.outcome) ?? 0) + 1)
      // A mismatch fails the property with the token and the three verdicts in the message.
      const same = (a: Verdict, b: Verdict): boolean => a.outcome === b.outcome && JSON.stringify(a.claims) === JSON.stringify(b.claims) && JSON.stringify(a.header) === JSON.stringify(b.header)
      if (!same(expected, actual) || !same(expected, viaJose)) {
        throw new Error(`verdicts differ for ${JSON.stringify(jwt)} (config ${config}): jose ${JSON.stringify(expected)}, jose route ${JSON.stringify(viaJose)}, fast path ${JSON.stringify(actual)}`)
      }
    }),
    { seed: 42, numRuns: 3000 },
  )
  const counts = Object.fromEntries([...seen].sort((a, b) => b[1] - a[1]))
  t.comment(`verdicts: ${JSON.stringify(counts)}; the fast path looked a key up for ${fastLookups}`)
  // The generator must reach every rule, or agreement would prove little.
  t.ok((seen.get('accepted') ?? 0) >= 200, `accepted: ${seen.get('accepted') ?? 0}`)
  for (const reason of [
    'malformed',
    'oversized',
    'alg_not_allowed',
    'forbidden_header',
    'missing_kid',
    'unknown_kid',
    'bad_signature',
    'wrong_typ',
    'wrong_issuer',
    'wrong_audience',
    'expired',
    'not_yet_valid',
    'issued_in_future',
    'missing_claim',
    'invalid_claim',
  ]) {
    t.ok((seen.get(reason) ?? 0) >= 5, `${reason}: ${seen.get(reason) ?? 0}`)
  }
  t.ok(fastLookups >= 1000, 'most tokens reached the fast path')
})

t.test('a valid token is verified on the fast path, an unknown kid on jose route', async (t) => {
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa-1' })).toString('base64url')
  const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'u', client_id: 'c', jti: 'j', iat: NOW, exp: NOW + 60 }
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
  const jwt = `${input}.${signature('RS256', input, 'issuer').toString('base64url')}`
  let joseCalls = 0
  const counted = new AccessTokenRulebook(
    (h) => {
      joseCalls++
      return joseKeys(h)
    },
    CONFIGS[0]!,
    nodeKeys,
  )
  t.equal((await verdictOf(counted, jwt)).outcome, 'accepted')
  t.equal(joseCalls, 0, 'jose was not asked for a key: the signature was checked with node:crypto')
  const unknown = jwt.replace(header, Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa-2' })).toString('base64url'))
  t.equal((await verdictOf(counted, unknown)).outcome, 'unknown_kid')
  t.equal(joseCalls, 1, 'a kid the fast path does not hold goes to jose, whose key lookup refetches')
})

t.test('only canonical base64url: a signature spelled with spare bits set is refused on both routes', async (t) => {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: 'ec-1' })).toString('base64url')
  const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'u', client_id: 'c', jti: 'j', iat: NOW, exp: NOW + 60 }
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
  const sig = signature('ES256', input, 'issuer').toString('base64url') // 64 bytes: 86 characters, 4 spare bits
  const last = sig.at(-1)!
  const spare = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const respelled = sig.slice(0, -1) + spare[spare.indexOf(last) + 1]!
  t.not(respelled, sig)
  t.same(Buffer.from(respelled, 'base64url'), Buffer.from(sig, 'base64url'), 'the same signature bytes')
  // jose alone reads it as the same signature and accepts it; the rulebook refuses the second spelling.
  await t.resolves(jwtVerify(`${input}.${respelled}`, joseKeys, { algorithms: ['ES256'], currentDate: new Date(NOW_MS) }))
  t.equal((await verdictOf(fast[0]!, `${input}.${sig}`)).outcome, 'accepted')
  t.equal((await verdictOf(fast[0]!, `${input}.${respelled}`)).outcome, 'malformed')
  t.equal((await verdictOf(joseRoute[0]!, `${input}.${respelled}`)).outcome, 'malformed')
})

t.test('JwsVerifyKey refuses a key that does not fit the algorithm, as jose would', async (t) => {
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
  t.equal(JwsVerifyKey.of(small.publicKey, 'RS256'), undefined, 'RSA under 2048 bits')
  t.equal(JwsVerifyKey.of(rsa.publicKey, 'ES256'), undefined, 'RSA for ECDSA')
  t.equal(JwsVerifyKey.of(ec.publicKey, 'ES384'), undefined, 'P-256 for ES384')
  t.equal(JwsVerifyKey.of(ed.publicKey, 'RS256'), undefined, 'Ed25519 for RSA')
  t.equal(JwsVerifyKey.of(rsa.privateKey, 'RS256'), undefined, 'a private key')
  t.equal(JwsVerifyKey.of(rsa.publicKey, 'HS256'), undefined, 'HMAC')
  t.equal(JwsVerifyKey.of(rsa.publicKey, 'none'), undefined, 'none')
  t.equal(JwsVerifyKey.fromJwk({ kty: 'RSA', n: 'AQAB' }, 'RS256'), undefined, 'a JWK node:crypto cannot take')
  const key = JwsVerifyKey.of(ec.publicKey, 'ES256')!
  t.equal(key.verify(Buffer.from('a.b'), Buffer.alloc(3)), false, 'a signature of the wrong length is not valid, and does not throw')
})
