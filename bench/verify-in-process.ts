import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { parseArgs } from 'node:util'
import { createVerifier as createFastJwtVerifier } from 'fast-jwt'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { AUDIENCE, makeKey, startFakeIssuer, token } from '../packages/test-harness/src/index.js'
import { createVerifier } from '../packages/verifier/src/index.js'
import { median } from './lib/measure.js'

/**
 * CPU per access-token verification in one process, without HTTP (issue 18; docs/performance.md):
 * the verifier (`verifier.verify`, its cache off: the rulebook's node:crypto fast path), jose's
 * `jwtVerify` with a local JWKS and the verifier's options, and fast-jwt's `createVerifier`
 * without its cache, interleaved round by round on the same RS256 token. CPU time
 * (`process.cpuUsage`, every thread: jose's checks run on libuv's pool) hardly moves with
 * neighbours on the machine, where rates do. Run it on one CPU, as the benchmark pins its servers:
 *
 *   taskset -c 0 node --import tsx --conditions=gatehouse-source bench/verify-in-process.ts [--rounds 5] [--n 5000]
 */
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, n: { type: 'string', default: '5000' } } })
const rounds = Number(values.rounds)
const n = Number(values.n)

const key = await makeKey()
const issuer = await startFakeIssuer({ keys: [key] })
const verifier = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, cache: false })
await verifier.ready()
const jwt = token({ key, issuer: issuer.issuer, now: Math.floor(Date.now() / 1000) })
const jwks = createLocalJWKSet({ keys: [key.publicJwk] })
const joseOptions = { issuer: issuer.issuer, audience: AUDIENCE, algorithms: ['RS256'], typ: 'at+jwt', clockTolerance: 30 }
const pem = createPublicKey({ key: key.publicJwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()
const fastJwt = createFastJwtVerifier({
  key: pem,
  algorithms: ['RS256'],
  allowedIss: issuer.issuer,
  allowedAud: AUDIENCE,
  checkTyp: 'at+jwt',
  requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
  clockTolerance: 30_000,
  cache: false,
})

const subjects: readonly (readonly [string, () => Promise<unknown> | unknown])[] = [
  ['verifier', () => verifier.verify(jwt)],
  ['jose', () => jwtVerify(jwt, jwks, joseOptions)],
  ['fast-jwt', () => fastJwt(jwt)],
]
const cpu = new Map<string, number[]>(subjects.map(([name]) => [name, []]))
for (const [, fn] of subjects) for (let i = 0; i < 2000; i++) await fn()
for (let round = 0; round < rounds; round++) {
  for (let s = 0; s < subjects.length; s++) {
    const [name, fn] = subjects[(s + round) % subjects.length]!
    const before = process.cpuUsage()
    for (let i = 0; i < n; i++) await fn()
    const used = process.cpuUsage(before)
    cpu.get(name)!.push((used.user + used.system) / n)
  }
}
const mine = median(cpu.get('verifier')!)
for (const [name, xs] of cpu) {
  const m = median(xs)
  process.stdout.write(`${name.padEnd(9)} ${m.toFixed(1).padStart(6)} µs CPU per verification (rounds ${xs.map((x) => x.toFixed(1)).join(', ')})${name === 'verifier' ? '' : `; ${name} / verifier: ${(m / mine).toFixed(2)}`}\n`)
}
await verifier.close()
await issuer.close()
