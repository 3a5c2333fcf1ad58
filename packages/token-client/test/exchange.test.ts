import { createServer } from 'node:http'
import t, { type Test } from 'tap'
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, TokenClientError, createTokenClient, type TokenClient } from '../src/index.js'
import { ManualClock } from '@gatehouse/test-harness'

/** exchange() (RFC 8693) against a small fake token endpoint (real HTTP on 127.0.0.1). */

type Reply = { status: number; body: Record<string, unknown> }

interface Fake {
  tokenEndpoint: string
  forms: URLSearchParams[]
  /** Answers for the next requests, in order; the last one repeats. */
  replies: Reply[]
  hold: Promise<void> | undefined
}

async function fake(t: Test): Promise<Fake> {
  let n = 0
  const state: Fake = { tokenEndpoint: '', forms: [], replies: [], hold: undefined }
  const server = createServer((req, res) => {
    let raw = ''
    req.on('data', (c: Buffer) => (raw += c.toString()))
    req.on('end', () => {
      void (async () => {
        state.forms.push(new URLSearchParams(raw))
        if (state.hold !== undefined) await state.hold
        const reply = state.replies[Math.min(n++, state.replies.length - 1)]!
        res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body))
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  state.tokenEndpoint = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/token`
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return state
}

const issued = (token: string, expiresIn = 300): Reply => ({
  status: 200,
  body: { access_token: token, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: expiresIn, scope: 'reports:read' },
})

/** An unsigned JWT-shaped subject token expiring at `exp` (seconds); the client only reads `exp`. */
const subject = (exp: number, who = 'alice'): string => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: who, exp })).toString('base64url')}.c2ln`

function client(srv: Fake, clock: ManualClock, extra: Partial<Parameters<typeof createTokenClient>[0]> = {}): TokenClient {
  return createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'resource-service',
    credentials: { type: 'client_secret_basic', secret: 's' },
    clock: clock.now,
    sleep: async () => {},
    ...extra,
  })
}

const T0 = 1_700_000_000_000

t.test('the request (RFC 8693 §2.1), and the result cached per subject, target and scope', async (t) => {
  const srv = await fake(t)
  srv.replies = [issued('x-1'), issued('x-2'), issued('x-3'), issued('x-4'), issued('x-5')]
  const clock = new ManualClock(T0)
  const tc = client(srv, clock)
  const alice = subject(T0 / 1000 + 900)
  const r = await tc.exchange({ subjectToken: alice, audience: 'api://reports', scope: ['reports:read'] })
  t.match(r, { accessToken: 'x-1', tokenType: 'Bearer', expiresAt: T0 + 300_000, scope: 'reports:read' })
  t.same(Object.fromEntries(srv.forms[0]!), {
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: alice,
    subject_token_type: ACCESS_TOKEN_TYPE,
    audience: 'api://reports',
    scope: 'reports:read',
  })
  t.equal((await tc.exchange({ subjectToken: alice, audience: 'api://reports', scope: 'reports:read' })).accessToken, 'x-1', 'cached')
  t.equal(srv.forms.length, 1)
  t.equal((await tc.exchange({ subjectToken: subject(T0 / 1000 + 900, 'bob'), audience: 'api://reports', scope: 'reports:read' })).accessToken, 'x-2', 'another subject: another token')
  t.equal((await tc.exchange({ subjectToken: alice, audience: 'api://reports' })).accessToken, 'x-3', 'another scope: another token')
  t.equal((await tc.exchange({ subjectToken: alice, resource: 'api://reports', actorToken: 'own' })).accessToken, 'x-4', 'another target parameter and an actor')
  t.same(Object.fromEntries(srv.forms[3]!), { grant_type: TOKEN_EXCHANGE_GRANT, subject_token: alice, subject_token_type: ACCESS_TOKEN_TYPE, resource: 'api://reports', actor_token: 'own', actor_token_type: ACCESS_TOKEN_TYPE })
  clock.advance(271_000) // inside the 30 s skew
  t.equal((await tc.exchange({ subjectToken: alice, audience: 'api://reports', scope: 'reports:read' })).accessToken, 'x-5', 'renewed ahead of expiry')
  t.equal(srv.forms.length, 5)
  tc.invalidate()
  t.equal((await tc.exchange({ subjectToken: alice, audience: 'api://reports', scope: 'reports:read' })).accessToken, 'x-5', 'invalidate() forgets exchanged tokens too (the server repeats its last answer)')
  t.equal(srv.forms.length, 6)
})

t.test('never cached past the subject token', async (t) => {
  const srv = await fake(t)
  srv.replies = [issued('x-1', 900), issued('x-2', 900)]
  const clock = new ManualClock(T0)
  const tc = client(srv, clock)
  const shortLived = subject(T0 / 1000 + 60)
  const r = await tc.exchange({ subjectToken: shortLived, audience: 'api://reports' })
  t.equal(r.expiresAt, T0 + 60_000, "expiresAt is the subject's exp, the earlier one")
  clock.advance(29_000)
  t.equal((await tc.exchange({ subjectToken: shortLived, audience: 'api://reports' })).accessToken, 'x-1')
  clock.advance(1_000) // half of the 60 s that remain
  t.equal((await tc.exchange({ subjectToken: shortLived, audience: 'api://reports' })).accessToken, 'x-2')
  clock.advance(60_000)
  const expired = await tc.exchange({ subjectToken: shortLived, audience: 'api://reports' })
  t.equal(srv.forms.length, 3, 'an expired subject is not served from the cache: asked again (the server will refuse it)')
  t.equal(expired.expiresAt, T0 + 60_000)
})

t.test('single flight per key; a final refusal drops the entry, a passing failure serves it', async (t) => {
  const srv = await fake(t)
  const clock = new ManualClock(T0)
  const tc = client(srv, clock, { retry: { maxAttempts: 1 } })
  const alice = subject(T0 / 1000 + 900)
  srv.replies = [issued('x-1', 100)]
  let release!: () => void
  srv.hold = new Promise<void>((resolve) => (release = resolve))
  const callers = Array.from({ length: 10 }, () => tc.exchange({ subjectToken: alice, audience: 'api://reports' }))
  release()
  t.ok((await Promise.all(callers)).every((x) => x.accessToken === 'x-1'))
  t.equal(srv.forms.length, 1)
  srv.hold = undefined

  srv.replies = [{ status: 503, body: { error: 'temporarily_unavailable' } }]
  clock.advance(75_000) // past renewAt (100 s less the 30 s skew), before expiry
  t.equal((await tc.exchange({ subjectToken: alice, audience: 'api://reports' })).accessToken, 'x-1', 'the issuer is down: the still valid token is served')

  srv.replies = [{ status: 400, body: { error: 'invalid_request', error_description: 'the subject_token is invalid, expired or revoked' } }]
  const err = await tc.exchange({ subjectToken: alice, audience: 'api://reports' }).catch((e: unknown) => e)
  t.ok(err instanceof TokenClientError)
  t.match(err, { code: 'invalid_request', retryable: false })
  srv.replies = [{ status: 503, body: { error: 'temporarily_unavailable' } }]
  t.match(await tc.exchange({ subjectToken: alice, audience: 'api://reports' }).catch((e: unknown) => e), { code: 'temporarily_unavailable' }, 'the refused entry is gone: not served afterwards')
})

t.test('the cache is bounded', async (t) => {
  const srv = await fake(t)
  srv.replies = [issued('x')]
  const clock = new ManualClock(T0)
  const tc = client(srv, clock, { exchangeCacheSize: 2 })
  const s = (who: string) => subject(T0 / 1000 + 900, who)
  for (const who of ['a', 'b', 'c']) await tc.exchange({ subjectToken: s(who), audience: 'api://reports' })
  t.equal(srv.forms.length, 3)
  await tc.exchange({ subjectToken: s('c'), audience: 'api://reports' })
  await tc.exchange({ subjectToken: s('b'), audience: 'api://reports' })
  t.equal(srv.forms.length, 3, 'the two newest are kept')
  await tc.exchange({ subjectToken: s('a'), audience: 'api://reports' })
  t.equal(srv.forms.length, 4, 'the oldest was dropped')
})

t.test('a bad request rejects with a TypeError naming what is wrong, before any request', async (t) => {
  const srv = await fake(t)
  const tc = client(srv, new ManualClock(T0))
  await t.rejects(tc.exchange({ subjectToken: '', audience: 'a' }), { name: 'TypeError', message: /subjectToken/ })
  await t.rejects(tc.exchange({ subjectToken: 'x' }), { name: 'TypeError', message: /audience or resource/ })
  await t.rejects(tc.exchange({ subjectToken: 'x', audience: '' }), { name: 'TypeError', message: /audience must be/ })
  await t.rejects(tc.exchange({ subjectToken: 'x', resource: 'r', actorToken: '' }), { name: 'TypeError', message: /actorToken/ })
  t.throws(() => createTokenClient({ tokenEndpoint: srv.tokenEndpoint, clientId: 'c', credentials: { type: 'client_secret_basic', secret: 's' }, exchangeCacheSize: 0 }), /exchangeCacheSize/)
  t.equal(srv.forms.length, 0)
})
