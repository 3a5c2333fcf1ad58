import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose'
import t, { type Test } from 'tap'
import { CLIENT_ASSERTION_TYPE, TokenClientError, createTokenClient, type FetchLike } from '../src/index.js'
import { ManualClock } from '@gatehouse/test-harness'

/** The token client against a small fake token endpoint (real HTTP on 127.0.0.1). */

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  form: URLSearchParams
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> }

interface FakeServer {
  base: string
  tokenEndpoint: string
  requests: Seen[]
  /** Answers for the next token requests, in order; the last one repeats. */
  replies: Reply[]
  /** When set, token requests wait for it before answering. */
  hold: Promise<void> | undefined
  discovery: Record<string, unknown> | undefined
}

async function startServer(t: Test): Promise<FakeServer> {
  let n = 0
  const state: FakeServer = {
    base: '',
    tokenEndpoint: '',
    requests: [],
    replies: [{ status: 200, body: { access_token: 'token-1', token_type: 'Bearer', expires_in: 300, scope: 'internal:read' } }],
    hold: undefined,
    discovery: undefined,
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (c: Buffer) => (raw += c.toString()))
    req.on('end', () => {
      void (async () => {
        if (req.url === '/.well-known/openid-configuration') {
          const doc = state.discovery ?? { issuer: state.base, token_endpoint: state.tokenEndpoint }
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc))
          return
        }
        state.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, form: new URLSearchParams(raw) })
        if (state.hold !== undefined) await state.hold
        const reply = state.replies[Math.min(n++, state.replies.length - 1)]!
        res.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...reply.headers })
        res.end(reply.body === undefined ? '' : JSON.stringify(reply.body))
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  state.base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`
  state.tokenEndpoint = `${state.base}/token`
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return state
}

const ok = (token: string, expiresIn = 300): Reply => ({ status: 200, body: { access_token: token, token_type: 'Bearer', expires_in: expiresIn } })

t.test('client_secret_basic: the request, and the token cached until shortly before expiry', async (t) => {
  const srv = await startServer(t)
  srv.replies = [ok('token-1', 300), ok('token-2', 300)]
  const clock = new ManualClock(1_700_000_000_000)
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'billing svc',
    credentials: { type: 'client_secret_basic', secret: 'p@ss:w/rd+ é' },
    scope: ['internal:read', 'documents:read'],
    audience: 'api://resource',
    clock: clock.now,
  })
  t.equal(await getToken(), 'token-1')
  const [req] = srv.requests
  t.equal(req!.method, 'POST')
  t.equal(req!.headers['content-type'], 'application/x-www-form-urlencoded')
  const decoded = Buffer.from(req!.headers.authorization!.replace(/^Basic /, ''), 'base64').toString()
  t.equal(decoded, 'billing+svc:p%40ss%3Aw%2Frd%2B+%C3%A9', 'RFC 6749 §2.3.1: form-urlencoded, then base64')
  t.same(Object.fromEntries(req!.form), { grant_type: 'client_credentials', scope: 'internal:read documents:read', resource: 'api://resource' })

  clock.advance(269_000)
  t.equal(await getToken(), 'token-1', 'cached')
  t.equal(srv.requests.length, 1)
  clock.advance(2_000) // 29 s before expiry: inside the 30 s skew
  t.equal(await getToken(), 'token-2')
  t.equal(srv.requests.length, 2)
  const details = await getToken.token()
  t.equal(details.expiresAt, clock.now() + 300_000)
  t.equal(details.tokenType, 'Bearer')
})

t.test('a short-lived token is renewed at half its lifetime', async (t) => {
  const srv = await startServer(t)
  srv.replies = [ok('a', 20), ok('b', 20)]
  const clock = new ManualClock(1_700_000_000_000)
  const getToken = createTokenClient({ tokenEndpoint: srv.tokenEndpoint, clientId: 'c', credentials: { type: 'client_secret_basic', secret: 's' }, clock: clock.now })
  t.equal(await getToken(), 'a')
  clock.advance(9_999)
  t.equal(await getToken(), 'a')
  clock.advance(1)
  t.equal(await getToken(), 'b')
})

t.test('single flight: N concurrent callers, one request', async (t) => {
  const srv = await startServer(t)
  let release!: () => void
  srv.hold = new Promise<void>((resolve) => (release = resolve))
  const getToken = createTokenClient({ tokenEndpoint: srv.tokenEndpoint, clientId: 'c', credentials: { type: 'client_secret_basic', secret: 's' } })
  const callers = Array.from({ length: 25 }, () => getToken())
  release()
  const tokens = await Promise.all(callers)
  t.ok(tokens.every((x) => x === 'token-1'))
  t.equal(srv.requests.length, 1)
})

t.test('5xx: retried with bounded exponential backoff, then success', async (t) => {
  const srv = await startServer(t)
  srv.replies = [
    { status: 503, body: { error: 'temporarily_unavailable' } },
    { status: 500, body: { error: 'server_error' } },
    { status: 502, body: 'bad gateway' },
    ok('after-retries'),
  ]
  const sleeps: number[] = []
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'c',
    credentials: { type: 'client_secret_basic', secret: 's' },
    retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300 },
    sleep: async (ms) => void sleeps.push(ms),
  })
  t.equal(await getToken(), 'after-retries')
  t.equal(srv.requests.length, 4)
  t.equal(sleeps.length, 3)
  const bounds = [
    [50, 100],
    [100, 200],
    [150, 300], // capped at maxDelayMs
  ]
  sleeps.forEach((ms, i) => t.ok(ms >= bounds[i]![0]! && ms <= bounds[i]![1]!, `delay ${i + 1}: ${ms} ms within ${bounds[i]}`))
})

t.test('network errors are retried', async (t) => {
  const srv = await startServer(t)
  let calls = 0
  const flaky: FetchLike = async (url, init) => {
    calls++
    if (calls <= 2) throw new TypeError('fetch failed')
    return await fetch(url, init)
  }
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'c',
    credentials: { type: 'client_secret_basic', secret: 's' },
    fetch: flaky,
    sleep: async () => {},
  })
  t.equal(await getToken(), 'token-1')
  t.equal(calls, 3)
})

t.test('gives up after maxAttempts with the last error', async (t) => {
  const srv = await startServer(t)
  srv.replies = [{ status: 503, body: { error: 'temporarily_unavailable', error_description: 'store down' } }]
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'c',
    credentials: { type: 'client_secret_basic', secret: 's' },
    retry: { maxAttempts: 3 },
    sleep: async () => {},
  })
  const err = await getToken().then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof TokenClientError)
  t.match(err, { code: 'temporarily_unavailable', status: 503, description: 'store down', attempts: 3, retryable: true })
  t.equal(srv.requests.length, 3)
})

t.test('4xx such as invalid_client is never retried, and throws the OAuth code', async (t) => {
  const srv = await startServer(t)
  srv.replies = [{ status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' }, headers: { 'www-authenticate': 'Basic realm="x"' } }, ok('never')]
  const sleeps: number[] = []
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'c',
    credentials: { type: 'client_secret_basic', secret: 'wrong' },
    sleep: async (ms) => void sleeps.push(ms),
  })
  await t.rejects(getToken(), { name: 'TokenClientError', code: 'invalid_client', status: 401, retryable: false, attempts: 1 })
  t.equal(srv.requests.length, 1)
  t.equal(sleeps.length, 0)

  const srv2 = await startServer(t)
  srv2.replies = [{ status: 400, body: { error: 'invalid_scope' } }]
  const other = createTokenClient({ tokenEndpoint: srv2.tokenEndpoint, clientId: 'c', credentials: { type: 'client_secret_basic', secret: 's' }, scope: 'root' })
  await t.rejects(other(), { code: 'invalid_scope', status: 400 })
  t.equal(srv2.requests.length, 1)
})

t.test('429 is retried after Retry-After (capped)', async (t) => {
  const srv = await startServer(t)
  srv.replies = [{ status: 429, body: { error: 'slow_down' }, headers: { 'retry-after': '2' } }, ok('later')]
  const sleeps: number[] = []
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'c',
    credentials: { type: 'client_secret_basic', secret: 's' },
    retry: { maxDelayMs: 1500 },
    sleep: async (ms) => void sleeps.push(ms),
  })
  t.equal(await getToken(), 'later')
  t.same(sleeps, [1500])
})

t.test('a malformed success is invalid_response', async (t) => {
  const srv = await startServer(t)
  srv.replies = [{ status: 200, body: { token_type: 'Bearer' } }]
  const getToken = createTokenClient({ tokenEndpoint: srv.tokenEndpoint, clientId: 'c', credentials: { type: 'client_secret_basic', secret: 's' } })
  await t.rejects(getToken(), { code: 'invalid_response' })
  srv.replies = [{ status: 200, body: { access_token: 'x', token_type: 'mac' } }]
  await t.rejects(getToken(), { code: 'invalid_response' })
})

t.test('private_key_jwt (RFC 7523): an assertion verifiable with the public key', async (t) => {
  const srv = await startServer(t)
  srv.replies = [ok('a', 1), ok('b', 1)]
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid: 'client-key-1', alg: 'RS256' }
  const getToken = createTokenClient({
    issuer: srv.base,
    clientId: 'reports',
    credentials: { type: 'private_key_jwt', privateKey: privateJwk },
    scope: 'internal:read',
  })
  t.equal(await getToken(), 'a')
  getToken.invalidate()
  t.equal(await getToken(), 'b')
  t.equal(srv.requests.length, 2, 'the token endpoint came from discovery')
  const jtis = new Set<string>()
  for (const req of srv.requests) {
    t.equal(req.headers.authorization, undefined)
    t.equal(req.form.get('client_assertion_type'), CLIENT_ASSERTION_TYPE)
    t.equal(req.form.get('client_id'), 'reports')
    t.equal(req.form.get('grant_type'), 'client_credentials')
    const { payload, protectedHeader } = await jwtVerify(req.form.get('client_assertion')!, publicKey, {
      issuer: 'reports',
      subject: 'reports',
      audience: srv.base,
      algorithms: ['RS256'],
    })
    t.equal(protectedHeader.kid, 'client-key-1')
    t.equal(payload.aud, srv.base, 'aud is the issuer identifier alone, as a string (RFC 7523bis), never the token endpoint')
    t.equal(payload.exp! - payload.iat!, 60, 'short-lived')
    t.type(payload.jti, 'string')
    jtis.add(payload.jti!)
  }
  t.equal(jtis.size, 2, 'a fresh jti each time')
})

t.test('private_key_jwt with an imported key and an explicit kid', async (t) => {
  const srv = await startServer(t)
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  const getToken = createTokenClient({
    issuer: srv.base,
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'reports',
    credentials: { type: 'private_key_jwt', privateKey, kid: 'ec-1', alg: 'ES256' },
  })
  await getToken()
  t.equal(srv.requests.length, 1, 'a given token endpoint skips discovery')
  const { protectedHeader, payload } = await jwtVerify(srv.requests[0]!.form.get('client_assertion')!, publicKey, { audience: srv.base })
  t.equal(protectedHeader.alg, 'ES256')
  t.equal(protectedHeader.kid, 'ec-1')
  t.equal(payload.aud, srv.base, 'aud is the issuer, even with the token endpoint given')
})

t.test('discovery must name the same issuer', async (t) => {
  const srv = await startServer(t)
  srv.discovery = { issuer: 'https://evil.example', token_endpoint: 'https://evil.example/token' }
  const getToken = createTokenClient({ issuer: srv.base, clientId: 'c', credentials: { type: 'client_secret_basic', secret: 's' } })
  await t.rejects(getToken(), { code: 'discovery_failed' })
  t.equal(srv.requests.length, 0)
})

t.test('a failed renewal while the token is still valid keeps the token', async (t) => {
  const srv = await startServer(t)
  srv.replies = [ok('first', 300), { status: 503, body: { error: 'temporarily_unavailable' } }]
  const clock = new ManualClock(1_700_000_000_000)
  const getToken = createTokenClient({
    tokenEndpoint: srv.tokenEndpoint,
    clientId: 'c',
    credentials: { type: 'client_secret_basic', secret: 's' },
    clock: clock.now,
    retry: { maxAttempts: 2 },
    sleep: async () => {},
  })
  t.equal(await getToken(), 'first')
  clock.advance(280_000)
  t.equal(await getToken(), 'first', 'renewal failed, the current token is still good')
  clock.advance(20_000)
  await t.rejects(getToken(), { code: 'temporarily_unavailable' }, 'but never an expired one')
})

t.test('options are validated up front, naming the option', async (t) => {
  const credentials = { type: 'client_secret_basic', secret: 's' } as const
  t.throws(() => createTokenClient({ clientId: 'c', credentials }), /"issuer"/)
  t.throws(() => createTokenClient({ tokenEndpoint: 'ftp://x', clientId: 'c', credentials }), /"tokenEndpoint"/)
  t.throws(() => createTokenClient({ tokenEndpoint: 'http://x/token', clientId: '', credentials }), /"clientId"/)
  t.throws(() => createTokenClient({ tokenEndpoint: 'http://x/token', clientId: 'c', credentials: { type: 'client_secret_basic', secret: '' } }), /"credentials.secret"/)
  t.throws(
    () => createTokenClient({ issuer: 'http://x', tokenEndpoint: 'http://x/token', clientId: 'c', credentials: { type: 'private_key_jwt', privateKey: { kty: 'RSA', n: 'x', e: 'AQAB' } } }),
    /"credentials.privateKey"/,
  )
  t.throws(
    () => createTokenClient({ tokenEndpoint: 'http://x/token', clientId: 'c', credentials: { type: 'private_key_jwt', privateKey: { kty: 'RSA', n: 'x', e: 'AQAB' } } }),
    /"issuer" is required with private_key_jwt/,
    'the assertion is addressed to the issuer, so private_key_jwt needs it',
  )
  t.throws(() => createTokenClient({ tokenEndpoint: 'http://x/token', clientId: 'c', credentials, retry: { maxAttempts: 0 } }), /"retry.maxAttempts"/)
})
