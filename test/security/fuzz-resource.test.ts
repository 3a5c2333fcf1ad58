/**
 * Property-based fuzzing of every route of the resource service through app.inject (issue 5):
 * hostile Authorization headers (junk, mangled genuine tokens, tokens with hostile claims signed
 * by the trusted key), bodies and content types. Never a 5xx or a stack trace; every error is
 * `{error, error_description}` JSON with a standard code, a 401 carries an RFC 6750 (or, for
 * DPoP presentations, RFC 9449) challenge;
 * afterwards the service is healthy and a valid request still works.
 */
import t from 'tap'
import fc from 'fast-check'
import { buildApp, loadConfig } from '../../services/resource/src/index.js'
import { AUDIENCE, dpopProof, makeDpopKey, startFakeIssuer } from '@gatehouse/test-harness'
import { check, contentType, headerValue, junk, OAUTH_ERRORS, SEED, STACK_TRACE } from './fuzz.js'

interface Res {
  statusCode: number
  headers: Record<string, string | string[] | number | undefined>
  body: string
}

function fail(what: string, res: Res): never {
  throw new Error(`${what}: ${res.statusCode} ${JSON.stringify(res.headers).slice(0, 300)} ${res.body.slice(0, 300)}`)
}

function shape(res: Res): void {
  if (res.statusCode >= 500) fail('a 5xx', res)
  if (STACK_TRACE.test(res.body)) fail('a stack trace', res)
  if (res.statusCode < 400) return
  if (!String(res.headers['content-type']).startsWith('application/json')) fail('a non-JSON error', res)
  const b = JSON.parse(res.body) as Record<string, unknown>
  if (!OAUTH_ERRORS.has(b.error as string) || typeof b.error_description !== 'string') fail('a non-standard error', res)
  if (res.statusCode === 401 && !/^(Bearer realm="[^"]*"|DPoP algs="[^"]*")/.test(String(res.headers['www-authenticate']))) fail('a 401 without a Bearer or DPoP challenge', res)
}

t.test(`fuzzing the resource service (seed ${SEED})`, async (t) => {
  const auth = await startFakeIssuer()
  t.teardown(() => auth.close())
  const logs: string[] = []
  const app = buildApp(loadConfig({ ISSUER: auth.issuer, AUDIENCE, LOG_LEVEL: 'info' }), { logStream: { write: (l: string) => void logs.push(l) } })
  t.teardown(() => app.close())
  await app.ready()
  await app.verifier.ready()

  const claimValue = fc.oneof(junk, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(junk, { maxLength: 3 }), fc.dictionary(junk, junk, { maxKeys: 3 }))
  const CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'roles', 'sid', 'auth_time']
  const hostileClaims = fc.dictionary(fc.constantFrom(...CLAIMS), claimValue, { maxKeys: 3 })
  const token = fc.oneof(
    { weight: 3, arbitrary: hostileClaims.map((c) => auth.userToken(c)) },
    { weight: 1, arbitrary: hostileClaims.map((c) => auth.serviceToken(c)) },
    { weight: 2, arbitrary: fc.constantFrom(auth.userToken(), auth.serviceToken(), auth.userToken({ roles: ['user'], scope: 'documents:read' })) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom(auth.userToken(), auth.serviceToken()), fc.nat(2000), fc.constantFrom('', '.', '=', '==', 'A', '..', '+', '/', ' ', '.x.y')).map(([tok, at, insert]) => {
        const i = at % (tok.length + 1)
        return tok.slice(0, i) + insert + tok.slice(i + (insert === '' ? 1 : 0))
      }),
    },
    { weight: 1, arbitrary: junk },
  )
  // DPoP presentations: a bound token (genuine or mangled) with junk, a proof of another key, or a fresh valid proof.
  const dpopKey = makeDpopKey('ES256')
  const boundToken = auth.userToken({ cnf: { jkt: dpopKey.jkt } })
  const proofFor = (path: string, method: string) => dpopProof({ key: dpopKey, htm: method, htu: `http://localhost${path}`, iat: Math.floor(Date.now() / 1000), accessToken: boundToken })
  const authorization = fc.option(
    fc.oneof(
      { weight: 2, arbitrary: fc.oneof(fc.constant(boundToken), token).map((x) => `DPoP ${x.replace(/[^\x20-\x7e]/g, '')}`) },
      { weight: 6, arbitrary: token.map((x) => `Bearer ${x.replace(/[^\x20-\x7e]/g, '')}`) },
      { weight: 1, arbitrary: headerValue },
      { weight: 1, arbitrary: token.map((x) => `bearer  ${x.replace(/[^\x20-\x7e]/g, '')}`) },
      { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer ${auth.userToken()}, Bearer ${auth.userToken()}`) },
    ),
    { nil: undefined },
  )
  const documentBody = fc.oneof(
    { weight: 3, arbitrary: fc.record({ title: fc.oneof(junk, fc.string({ minLength: 1, maxLength: 50 })), body: fc.option(junk, { nil: undefined }) }).map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: fc.constantFrom('{', '', '{"title":"' + 'x'.repeat(300) + '"}', '{"title":"a","extra":1}', JSON.stringify({ title: 'a', body: 'b'.repeat(200_000) }), '{"__proto__":{"admin":true},"title":"x"}') },
    { weight: 1, arbitrary: junk },
  )
  const ROUTES: [string, string][] = [
    ['GET', '/me'],
    ['GET', '/documents'],
    ['POST', '/documents'],
    ['GET', '/admin'],
    ['GET', '/admin/users'],
    ['GET', '/internal'],
    ['GET', '/internal/reports'],
    ['GET', '/healthz'],
    ['GET', '/readyz'],
    ['GET', '/metrics'],
    ['DELETE', '/documents'],
    ['GET', '/../me'],
    ['GET', '/nope'],
  ]
  const reached = new Map<string, Map<number, number>>()
  await check(
    t,
    'every route',
    fc.record({ route: fc.constantFrom(...ROUTES), auth: authorization, dpop: fc.option(fc.oneof(fc.constant('valid'), headerValue, junk), { nil: undefined }), body: documentBody, type: fc.oneof(fc.constant<string | undefined>('application/json'), contentType), q: fc.option(junk.map(encodeURIComponent), { nil: undefined }) }),
    async (r) => {
      const [method, path] = r.route
      const headers: Record<string, string> = {}
      if (r.auth !== undefined) headers.authorization = r.auth
      if (r.dpop !== undefined) headers.dpop = r.dpop === 'valid' ? proofFor(path, method) : r.dpop
      if (r.type !== undefined && method === 'POST') headers['content-type'] = r.type
      const res = await app.inject({ method: method as 'GET', url: r.q === undefined ? path : `${path}?q=${r.q}`, headers, ...(method === 'POST' ? { payload: r.body } : {}) })
      const byStatus = reached.get(`${method} ${path}`) ?? new Map<number, number>()
      byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1)
      reached.set(`${method} ${path}`, byStatus)
      shape(res)
    },
    3000,
  )
  for (const [key, byStatus] of [...reached].sort()) t.comment(`${key}: ${JSON.stringify(Object.fromEntries(byStatus))}`)
  t.ok(reached.get('GET /me')?.has(200) && reached.get('GET /me')?.has(401), '/me: valid and refused tokens were both reached')
  t.ok(reached.get('POST /documents')?.has(201) && reached.get('POST /documents')?.has(400), 'documents were created and bad bodies refused')
  t.ok(reached.get('GET /internal')?.has(403), 'the role and scope guards were reached')
  t.ok(reached.get('GET /documents')?.has(200), 'DPoP or Bearer requests reached /documents')

  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/documents', headers: { authorization: `Bearer ${auth.userToken()}` } })).statusCode, 200, 'a valid request still works')
  t.notMatch(logs.join('\n'), /"level":50/, 'no error-level log line')
})
