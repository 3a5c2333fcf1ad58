/**
 * Shared pieces of the property-based fuzzing suites (fast-check): arbitraries for hostile HTTP
 * input, and the run settings. Runs are bounded (FUZZ_RUNS scales them) and seeded (FUZZ_SEED
 * replays a failure; the seed is always printed).
 */
import fc from 'fast-check'
import type { Test } from 'tap'

export const SEED = process.env.FUZZ_SEED === undefined ? 20260101 : Number(process.env.FUZZ_SEED)
const SCALE = process.env.FUZZ_RUNS === undefined ? 1 : Number(process.env.FUZZ_RUNS)

/** fast-check settings: fixed seed, bounded runs, and the seed and path printed on failure. */
export function runs(numRuns: number): fc.Parameters<unknown> {
  return { seed: SEED, numRuns: Math.max(1, Math.round(numRuns * SCALE)), endOnFailure: true }
}

/** Runs one property; a failure names the seed and the shrunk counterexample in the test output. */
export async function check<T>(t: Test, name: string, arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, numRuns: number): Promise<void> {
  const started = Date.now()
  const details = await fc.check(fc.asyncProperty(arbitrary, predicate), runs(numRuns))
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
    t.fail(`${name}: ${cause}\n${fc.defaultReportMessage(details) ?? 'failed'}\nreplay with FUZZ_SEED=${details.seed}`)
  } else {
    t.pass(`${name}: ${details.numRuns} runs in ${Date.now() - started} ms (seed ${SEED})`)
  }
}

/** Nasty strings: empty, huge, unicode, control characters, encodings, injection-shaped. */
export const junk: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.base64String({ maxLength: 200 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '\u0000',
      '\r\n',
      '%',
      '%zz',
      '%00',
      '../../etc/passwd',
      '{"a":1}',
      '[]',
      'null',
      '<script>alert(1)</script>',
      "' OR 1=1 --",
      'a.b.c',
      'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
      'x'.repeat(300),
      'y'.repeat(3000),
      'z'.repeat(20_000),
      '__proto__',
      'constructor',
      '{familyId}',
      'javascript:alert(1)',
      '//evil.example',
    ),
  },
)

/** A header value that an HTTP client could actually send (visible ASCII and spaces). */
export const headerValue: fc.Arbitrary<string> = fc.oneof(fc.stringMatching(/^[\x20-\x7e]{0,120}$/), fc.constantFrom('', 'x'.repeat(9000)))

export const contentType: fc.Arbitrary<string | undefined> = fc.constantFrom(
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'APPLICATION/X-WWW-FORM-URLENCODED',
  'application/json',
  'text/plain',
  'application/xml',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded; charset=latin1',
  undefined,
)

/** Form or query pairs: known parameter names with good or hostile values, sometimes repeated, sometimes unknown names. */
export function pairs(names: readonly string[], good: Record<string, fc.Arbitrary<string>> = {}): fc.Arbitrary<[string, string][]> {
  const name = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...names) }, { weight: 1, arbitrary: junk })
  const pair = name.chain((n) => fc.tuple(fc.constant(n), Object.hasOwn(good, n) ? fc.oneof({ weight: 2, arbitrary: good[n]! }, { weight: 1, arbitrary: junk }) : junk))
  return fc.array(pair, { maxLength: 12 })
}

export function encode(p: readonly [string, string][]): string {
  return p.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')
}

type Pair = [string, string]

/**
 * A valid request with up to three mutations: a parameter dropped, given another value (hostile
 * or genuine), added, or repeated. Mostly valid input reaches the deep code paths that purely
 * random input never gets past the first check to.
 */
export function mutated(templates: fc.Arbitrary<Pair[]>, names: readonly string[], value: fc.Arbitrary<string>): fc.Arbitrary<Pair[]> {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('drop' as const), name: fc.constantFrom(...names) }),
    fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom(...names), value }),
    fc.record({ kind: fc.constant('add' as const), name: fc.oneof(fc.constantFrom(...names), junk), value }),
    fc.record({ kind: fc.constant('repeat' as const), name: fc.constantFrom(...names) }),
  )
  return fc.tuple(templates, fc.array(mutation, { maxLength: 3 })).map(([template, ms]) => {
    let out: Pair[] = template.map(([k, v]) => [k, v])
    for (const m of ms) {
      if (m.kind === 'drop') out = out.filter(([k]) => k !== m.name)
      else if (m.kind === 'set') out = [...out.filter(([k]) => k !== m.name), [m.name, m.value]]
      else if (m.kind === 'add') out.push([m.name, m.value])
      else out = [...out, ...out.filter(([k]) => k === m.name)]
    }
    return out
  })
}

/** A raw body: an encoded form, JSON, or bytes. */
export function body(p: fc.Arbitrary<[string, string][]>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: p.map(encode) },
    { weight: 1, arbitrary: p.map((x) => JSON.stringify(Object.fromEntries(x))) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: junk },
  )
}

/** A query string, sometimes with raw malformed escapes appended. */
export function query(p: fc.Arbitrary<[string, string][]>): fc.Arbitrary<string> {
  return fc.tuple(p.map(encode), fc.constantFrom('', '&', '&%', '&%zz', '&=', '&a[b]=c', '&a=1&a=2', '&;')).map(([q, extra]) => q + extra)
}

/** The standard RFC 6749 §5.2 (and §4.1.2.1) / RFC 6750 §3.1 error codes a JSON error may carry. */
export const OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_token',
  'insufficient_scope',
  'unsupported_token_type',
  'access_denied',
  // RFC 6749 §4.1.2.1, in JSON at the PAR endpoint (RFC 9126 §2.3).
  'unsupported_response_type',
  'temporarily_unavailable',
  // RFC 8628 §3.5: the device grant's polling answers.
  'authorization_pending',
  'slow_down',
  'expired_token',
  'not_found',
  // RFC 9449 §7.1, §9.
  'invalid_dpop_proof',
  'use_dpop_nonce',
])

export const STACK_TRACE = /at [^\n]*\.(ts|js|mjs|cjs):\d+|node:internal|Error: .*\n\s+at /
