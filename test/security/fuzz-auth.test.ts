/**
 * Property-based fuzzing of every auth endpoint through app.inject (issue 5): whatever arrives —
 * hostile parameters, repeated ones, wrong content types, junk bodies and headers, malformed
 * cookies — the answer is never a 5xx or a stack trace; OAuth endpoints answer RFC 6749 §5.2 /
 * RFC 6750 JSON with a standard code and no-store; the browser endpoints answer a page with the
 * security headers, or redirect only to a URI registered for the client. Afterwards the service
 * is healthy and a real login still works.
 */
import t from 'tap'
import fc from 'fast-check'
import { authorizeQuery, browserLogin, cookiesOf, CLI, clientAssertion, exchangeCode, postForm, startOidcApp, WEB, ASSERTION_TYPE, basic, form, type OidcApp } from './auth-fixture.js'
import { parseLoginForm } from '../../services/auth/test/oidc/harness.js'
import { hashPassword } from '../../services/auth/src/index.js'
import { body, check, contentType, encode, headerValue, junk, mutated, OAUTH_ERRORS, pairs, query, SEED, STACK_TRACE } from './fuzz.js'

interface Res {
  statusCode: number
  headers: Record<string, string | string[] | number | undefined>
  body: string
}

const REGISTERED_REDIRECTS = ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback', 'http://127.0.0.1:3000/spa/callback']
const REGISTERED_LOGOUT = ['http://127.0.0.1:3000/', 'http://localhost:3000/', 'http://127.0.0.1:3000/spa/']

function fail(what: string, res: Res): never {
  throw new Error(`${what}: ${res.statusCode} ${JSON.stringify(res.headers).slice(0, 300)} ${res.body.slice(0, 300)}`)
}

function common(res: Res): void {
  if (res.statusCode >= 500) fail('a 5xx', res)
  if (STACK_TRACE.test(res.body)) fail('a stack trace', res)
}

/** An OAuth endpoint's error: JSON {error, error_description} with a standard code. */
function oauthShape(res: Res, noStore: boolean): void {
  common(res)
  if (res.statusCode < 400) return
  if (!String(res.headers['content-type']).startsWith('application/json')) fail('a non-JSON error', res)
  const b = JSON.parse(res.body) as Record<string, unknown>
  if (Object.keys(b).sort().join() !== 'error,error_description') fail('not exactly {error, error_description}', res)
  if (!OAUTH_ERRORS.has(b.error as string) || typeof b.error_description !== 'string') fail('a non-standard error', res)
  if (noStore && res.statusCode !== 404 && res.headers['cache-control'] !== 'no-store') fail('an error without no-store', res)
  if (res.statusCode === 401 && String(res.headers['www-authenticate'] ?? '').length === 0 && b.error !== 'invalid_client') fail('a 401 without a challenge', res)
}

/** A browser endpoint: an error is a page with the security headers; a redirect goes only to a registered URI. */
function pageShape(res: Res, allowed: readonly string[]): void {
  common(res)
  if (res.statusCode === 302 || res.statusCode === 303) {
    const location = String(res.headers.location)
    if (!allowed.some((u) => location === u || location.startsWith(`${u}?`))) fail('a redirect to an unregistered URI', res)
    return
  }
  if (res.statusCode >= 400) {
    if (!String(res.headers['content-type']).startsWith('text/html')) fail('a browser error that is not a page', res)
    const csp = String(res.headers['content-security-policy'])
    if (!csp.includes("default-src 'none'") || !csp.includes("frame-ancestors 'none'")) fail('a page without the CSP', res)
    if (res.headers['x-frame-options'] !== 'DENY' || res.headers['x-content-type-options'] !== 'nosniff' || res.headers['cache-control'] !== 'no-store') fail('a page without the security headers', res)
  }
}

t.test(`fuzzing the auth service (seed ${SEED})`, async (t) => {
  const h: OidcApp = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  // A user the fuzzer never names, to show afterwards that the service still signs people in (the
  // fuzzer may well have locked alice and bob, which is the limiter doing its job).
  await h.deps.users.add({ username: 'carol', passwordHash: await hashPassword('carol-password') })

  // Genuine material for the fuzzer to mutate and misplace.
  const tokens = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid profile' })).json()
  const login = await browserLogin(h)
  const page = await h.app.inject({ method: 'GET', url: `/authorize?${authorizeQuery()}` })
  const pending = { fields: parseLoginForm(page.body), cookies: cookiesOf(page) }
  const assertion = await clientAssertion(h)
  const genuine = fc.constantFrom(tokens.access_token as string, tokens.refresh_token as string, tokens.id_token as string, login.code, assertion)
  const address = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant('127.0.0.1'))
  const authorization = fc.option(
    fc.oneof(
      fc.constantFrom(CLI, WEB, basic('reporting-service', 'reporting-secret'), basic('spa', ''), basic('cli', 'wrong')),
      headerValue,
      junk.map((j) => `Basic ${Buffer.from(j).toString('base64')}`),
      genuine.map((g) => `Bearer ${g}`),
      junk.map((j) => `Bearer ${j.replace(/[^\x20-\x7e]/g, '')}`),
    ),
    { nil: undefined },
  )
  const cookie = fc.option(
    fc.oneof(
      fc.constant(Object.entries({ ...login.session, ...pending.cookies }).map(([k, v]) => `${k}=${v}`).join('; ')),
      headerValue,
      fc.tuple(fc.constantFrom('gh_session', `gh_login_${pending.fields.interaction}`, 'gh_login_AAAAAAAAAAAAAAAA'), headerValue).map(([k, v]) => `${k}=${v}`),
    ),
    { nil: undefined },
  )
  // What the fuzzer reached, per endpoint and status: proof that it got past the first check.
  const reached = new Map<string, Map<number, number>>()
  const request = async (method: string, url: string, extra: { body?: string | undefined; type?: string | undefined; auth?: string | undefined; cookie?: string | undefined; ip: string }) => {
    const headers: Record<string, string> = {}
    if (extra.type !== undefined) headers['content-type'] = extra.type
    if (extra.auth !== undefined) headers.authorization = extra.auth
    if (extra.cookie !== undefined) headers.cookie = extra.cookie
    const res = await h.app.inject({ method: method as 'GET', url, headers, remoteAddress: extra.ip, ...(extra.body === undefined ? {} : { payload: extra.body }) })
    const key = `${method} ${url.split('?')[0]}`
    const byStatus = reached.get(key) ?? new Map<number, number>()
    byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1)
    reached.set(key, byStatus)
    return res
  }
  const statuses = (key: string) => reached.get(key) ?? new Map<number, number>()

  const TOKEN_PARAMS = ['grant_type', 'username', 'password', 'scope', 'refresh_token', 'code', 'code_verifier', 'redirect_uri', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type']
  const tokenPairs = pairs(TOKEN_PARAMS, {
    grant_type: fc.constantFrom('password', 'refresh_token', 'authorization_code', 'client_credentials', 'implicit', 'urn:ietf:params:oauth:grant-type:jwt-bearer'),
    username: fc.constantFrom('alice', 'bob', 'ALICE', 'nobody'),
    password: fc.constantFrom('alice-password', 'bob-password', 'wrong'),
    refresh_token: genuine,
    code: genuine,
    client_assertion: genuine,
    client_assertion_type: fc.constant(ASSERTION_TYPE),
    client_id: fc.constantFrom('cli', 'web', 'spa', 'svc-jwt', 'reporting-service'),
    redirect_uri: fc.constantFrom(...REGISTERED_REDIRECTS),
    scope: fc.constantFrom('openid', 'openid profile', 'internal:read', 'documents:read documents:read'),
  })
  const FORM_TYPE = 'application/x-www-form-urlencoded'
  const tokenTemplates = fc.oneof(
    fc.constant<[string, string][]>([['grant_type', 'password'], ['username', 'alice'], ['password', 'alice-password'], ['scope', 'openid']]),
    fc.constant<[string, string][]>([['grant_type', 'password'], ['username', 'bob'], ['password', 'bob-password'], ['client_id', 'cli'], ['client_secret', 'cli-secret']]),
    fc.constant<[string, string][]>([['grant_type', 'refresh_token'], ['refresh_token', tokens.refresh_token as string]]),
    fc.constant<[string, string][]>([['grant_type', 'authorization_code'], ['code', login.code], ['redirect_uri', REGISTERED_REDIRECTS[0]!], ['code_verifier', 'dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk']]),
    fc.constant<[string, string][]>([['grant_type', 'client_credentials'], ['scope', 'internal:read']]),
    fc.constant<[string, string][]>([['grant_type', 'client_credentials'], ['client_assertion_type', ASSERTION_TYPE], ['client_assertion', assertion]]),
  )
  const tokenValue = fc.oneof(junk, genuine, fc.constantFrom('alice', 'alice-password', 'cli', 'web', 'openid', 'password', 'refresh_token', ...REGISTERED_REDIRECTS))
  const nearValid = fc.record({
    body: mutated(tokenTemplates, TOKEN_PARAMS, tokenValue).map(encode),
    type: fc.oneof({ weight: 8, arbitrary: fc.constant<string | undefined>(FORM_TYPE) }, { weight: 1, arbitrary: contentType }),
    auth: fc.oneof({ weight: 6, arbitrary: fc.constantFrom<string | undefined>(CLI, WEB, basic('reporting-service', 'reporting-secret'), undefined) }, { weight: 1, arbitrary: authorization }),
    cookie,
    ip: address,
  })
  const random = fc.record({ body: body(tokenPairs), type: contentType, auth: authorization, cookie, ip: address })
  await check(t, 'POST /token', fc.oneof({ weight: 3, arbitrary: nearValid }, { weight: 1, arbitrary: random }), async (r) => {
    oauthShape(await request('POST', '/token', r), true)
  }, 600)

  const checkPairs = pairs(['token', 'token_type_hint', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type'], {
    token: genuine,
    token_type_hint: fc.constantFrom('access_token', 'refresh_token', 'id_token'),
    client_id: fc.constantFrom('cli', 'web', 'spa'),
  })
  const checkTemplates = fc.oneof(
    genuine.map((g): [string, string][] => [['token', g]]),
    genuine.map((g): [string, string][] => [['token', g], ['token_type_hint', 'refresh_token']]),
    genuine.map((g): [string, string][] => [['token', g], ['client_id', 'web'], ['client_secret', 'web-secret']]),
  )
  for (const path of ['/revoke', '/introspect']) {
    const near = fc.record({
      body: mutated(checkTemplates, ['token', 'token_type_hint', 'client_id', 'client_secret'], fc.oneof(junk, genuine)).map(encode),
      type: fc.oneof({ weight: 8, arbitrary: fc.constant<string | undefined>(FORM_TYPE) }, { weight: 1, arbitrary: contentType }),
      auth: fc.oneof({ weight: 6, arbitrary: fc.constantFrom<string | undefined>(CLI, WEB, undefined) }, { weight: 1, arbitrary: authorization }),
      cookie,
      ip: address,
    })
    const rand = fc.record({ body: body(checkPairs), type: contentType, auth: authorization, cookie, ip: address })
    await check(t, `POST ${path}`, fc.oneof({ weight: 3, arbitrary: near }, { weight: 1, arbitrary: rand }), async (r) => {
      const res = await request('POST', path, r)
      oauthShape(res, true)
      if (path === '/revoke' && res.statusCode === 200 && res.body !== '') fail('a revocation answer with a body', res)
    }, 300)
  }

  // POST /par (RFC 9126): web's or spa's valid push with parameters changed, added or repeated.
  const PUSHED = ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'prompt', 'request_uri', 'request', 'dpop_jkt', 'client_secret']
  const pushTemplates = fc.constantFrom<[string, string][]>(
    [...new URLSearchParams(authorizeQuery())] as [string, string][],
    [...new URLSearchParams(authorizeQuery({ client_id: 'spa', redirect_uri: REGISTERED_REDIRECTS[2]!, scope: 'openid' }))] as [string, string][],
  )
  const nearPush = fc.record({
    body: mutated(pushTemplates, PUSHED, fc.oneof(junk, fc.constantFrom('web', 'spa', 'cli', 'web-secret', 'openid', 'urn:ietf:params:oauth:request_uri:x', ...REGISTERED_REDIRECTS))).map(encode),
    type: fc.oneof({ weight: 8, arbitrary: fc.constant<string | undefined>(FORM_TYPE) }, { weight: 1, arbitrary: contentType }),
    auth: fc.oneof({ weight: 6, arbitrary: fc.constantFrom<string | undefined>(WEB, CLI, undefined) }, { weight: 1, arbitrary: authorization }),
    cookie,
    ip: address,
  })
  await check(t, 'POST /par', nearPush, async (r) => {
    const res = await request('POST', '/par', r)
    oauthShape(res, true)
    if (res.statusCode === 201 && !/^urn:ietf:params:oauth:request_uri:[\w-]{43}$/.test(String(JSON.parse(res.body).request_uri))) fail('a push answered without a request_uri', res)
  }, 300)

  // A token of a family the fuzzer never sees (so it cannot revoke it), for the happy path.
  const userinfoToken = (await postForm(h, '/token', { grant_type: 'password', username: 'bob', password: 'bob-password', scope: 'openid profile' })).json().access_token as string
  const bearer = fc.oneof({ weight: 3, arbitrary: fc.constant<string | undefined>(`Bearer ${userinfoToken}`) }, { weight: 2, arbitrary: authorization })
  await check(
    t,
    'GET|POST /userinfo',
    fc.record({ method: fc.constantFrom('GET', 'POST'), body: fc.option(body(pairs(['access_token'], { access_token: fc.oneof(genuine, fc.constant(userinfoToken)) })), { nil: undefined }), type: contentType, auth: bearer, q: query(pairs(['access_token'], { access_token: genuine })), ip: address }),
    async (r) => {
      const res = await request(r.method, `/userinfo?${r.q}`, { ...r, body: r.method === 'POST' ? r.body : undefined })
      oauthShape(res, true)
      if (res.statusCode === 401 && !String(res.headers['www-authenticate']).startsWith('Bearer realm="gatehouse"')) fail('a 401 without a Bearer challenge', res)
    },
    300,
  )

  const AUTHORIZE = ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'prompt', 'max_age', 'login_hint', 'response_mode', 'request', 'request_uri']
  const authorizePairs = fc.oneof(
    pairs(AUTHORIZE, {
      response_type: fc.constantFrom('code', 'token', 'code id_token'),
      client_id: fc.constantFrom('web', 'spa', 'cli', 'ghost'),
      redirect_uri: fc.constantFrom(...REGISTERED_REDIRECTS, 'https://evil.example/cb'),
      code_challenge_method: fc.constantFrom('S256', 'plain'),
      code_challenge: fc.constant('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'),
      prompt: fc.constantFrom('none', 'login', 'none login', 'consent'),
      max_age: fc.constantFrom('0', '60', '-1', '1e9'),
    }),
    // A valid request with one parameter changed, added or repeated.
    fc.tuple(fc.constantFrom(...AUTHORIZE), junk, fc.boolean()).map(([k, v, replace]): [string, string][] => {
      const base = [...new URLSearchParams(authorizeQuery())] as [string, string][]
      return replace ? [...base.filter(([n]) => n !== k), [k, v]] : [...base, [k, v]]
    }),
  )
  await check(
    t,
    'GET|POST /authorize',
    fc.record({ method: fc.constantFrom('GET', 'POST'), p: authorizePairs, q: query(authorizePairs), type: contentType, cookie, ip: address, raw: fc.option(junk, { nil: undefined }) }),
    async (r) => {
      const res =
        r.method === 'GET'
          ? await request('GET', `/authorize?${r.q}`, { cookie: r.cookie, ip: r.ip })
          : await request('POST', '/authorize', { body: r.raw ?? new URLSearchParams(r.p).toString(), type: r.type, cookie: r.cookie, ip: r.ip })
      pageShape(res, REGISTERED_REDIRECTS)
    },
    500,
  )

  const loginPairs = pairs(['interaction', 'csrf', 'username', 'password'], {
    interaction: fc.constantFrom(pending.fields.interaction, 'AAAAAAAAAAAAAAAA'),
    csrf: fc.constantFrom(pending.fields.csrf, `${pending.fields.csrf}x`),
    username: fc.constantFrom('alice', 'bob', 'nobody'),
    password: fc.constantFrom('alice-password', 'wrong'),
  })
  const pendingCookie = Object.entries(pending.cookies).map(([k, v]) => `${k}=${v}`).join('; ')
  const loginTemplate = fc.constant<[string, string][]>([['interaction', pending.fields.interaction], ['csrf', pending.fields.csrf], ['username', 'alice'], ['password', 'alice-password']])
  const nearLogin = fc.record({
    body: mutated(loginTemplate, ['interaction', 'csrf', 'username', 'password'], fc.oneof(junk, fc.constantFrom('alice', 'bob', 'alice-password', pending.fields.csrf))).map(encode),
    type: fc.oneof({ weight: 8, arbitrary: fc.constant<string | undefined>(FORM_TYPE) }, { weight: 1, arbitrary: contentType }),
    cookie: fc.oneof({ weight: 4, arbitrary: fc.constant<string | undefined>(pendingCookie) }, { weight: 1, arbitrary: cookie }),
    ip: address,
  })
  const randomLogin = fc.record({ body: body(loginPairs), type: contentType, cookie, ip: address })
  await check(t, 'POST /login', fc.oneof({ weight: 2, arbitrary: nearLogin }, { weight: 1, arbitrary: randomLogin }), async (r) => {
    pageShape(await request('POST', '/login', r), REGISTERED_REDIRECTS)
  }, 400)

  const logoutPairs = pairs(['id_token_hint', 'post_logout_redirect_uri', 'client_id', 'state'], {
    id_token_hint: genuine,
    post_logout_redirect_uri: fc.constantFrom(...REGISTERED_LOGOUT, 'https://evil.example/'),
    client_id: fc.constantFrom('web', 'spa', 'cli'),
  })
  await check(t, 'GET|POST /logout', fc.record({ method: fc.constantFrom('GET', 'POST'), body: body(logoutPairs), q: query(logoutPairs), type: contentType, cookie, ip: address }), async (r) => {
    const res = r.method === 'GET' ? await request('GET', `/logout?${r.q}`, { cookie: r.cookie, ip: r.ip }) : await request('POST', '/logout', { body: r.body, type: r.type, cookie: r.cookie, ip: r.ip })
    pageShape(res, REGISTERED_LOGOUT)
  }, 300)

  // The device flow (RFC 8628): /device_authorization is an OAuth endpoint, /device a page that never redirects away.
  const device = (await postForm(h, '/device_authorization', { client_id: 'cli-device' }, null)).json() as { device_code: string; user_code: string }
  const devicePairs = pairs(['client_id', 'client_secret', 'scope', 'grant_type', 'device_code'], {
    client_id: fc.constantFrom('cli-device', 'cli', 'spa', 'web'),
    scope: fc.constantFrom('openid', 'openid profile documents:read', 'documents:write'),
    grant_type: fc.constant('urn:ietf:params:oauth:grant-type:device_code'),
    device_code: fc.oneof(fc.constant(device.device_code), genuine),
  })
  await check(t, 'POST /device_authorization and the device grant at /token', fc.record({ path: fc.constantFrom('/device_authorization', '/token'), body: body(devicePairs), type: contentType, auth: authorization, cookie, ip: address }), async (r) => {
    oauthShape(await request('POST', r.path, r), true)
  }, 200)
  const pagePairs = pairs(['user_code', 'form', 'confirm', 'csrf', 'action'], {
    user_code: fc.constantFrom(device.user_code, device.user_code.toLowerCase(), 'BCDF-GHJK', '<b>x</b>'),
    action: fc.constantFrom('approve', 'deny'),
  })
  await check(t, 'GET|POST /device', fc.record({ method: fc.constantFrom('GET', 'POST'), body: body(pagePairs), q: query(pagePairs), type: contentType, cookie, ip: address }), async (r) => {
    const res = r.method === 'GET' ? await request('GET', `/device?${r.q}`, { cookie: r.cookie, ip: r.ip }) : await request('POST', '/device', { body: r.body, type: r.type, cookie: r.cookie, ip: r.ip })
    pageShape(res, [])
  }, 200)

  // The account page (DESIGN §10.5): a page whose forms never redirect away from it.
  const accountPairs = pairs(['form', 'csrf', 'session', 'current_password', 'new_password', 'new_password_again', 'notice'], {
    notice: fc.constantFrom('signed-out', 'password-changed', '<b>x</b>', 'constructor'),
  })
  await check(t, 'GET /account and POST /account/...', fc.record({ path: fc.constantFrom('/account', '/account/sessions/end', '/account/sessions/end-all', '/account/password'), body: body(accountPairs), q: query(accountPairs), type: contentType, cookie, ip: address }), async (r) => {
    const res = r.path === '/account' ? await request('GET', `${r.path}?${r.q}`, { cookie: r.cookie, ip: r.ip }) : await request('POST', r.path, { body: r.body, type: r.type, cookie: r.cookie, ip: r.ip })
    pageShape(res, [`${h.issuer}/account`])
  }, 200)

  const OTHER = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/jwks.json', '/healthz', '/readyz', '/metrics', '/', '/token/', '/TOKEN', '/authorize/..', '/%2e%2e/token', '/login', '/no-such-route']
  await check(
    t,
    'everything else (any method, path, query, headers)',
    fc.record({ method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), path: fc.constantFrom(...OTHER), q: query(pairs(['x', 'callback', 'format'])), body: fc.option(junk, { nil: undefined }), type: contentType, auth: authorization, ip: address }),
    async (r) => {
      const res = await request(r.method, `${r.path}?${r.q}`, { ...r, body: r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body })
      common(res)
      if (res.statusCode === 404 && r.method !== 'HEAD' && JSON.parse(res.body).error !== 'not_found') fail('a 404 that is not JSON not_found', res)
    },
    150,
  )

  for (const [key, byStatus] of [...reached].sort()) {
    if ([...byStatus.values()].reduce((a, b) => a + b, 0) >= 20) t.comment(`${key}: ${JSON.stringify(Object.fromEntries(byStatus))}`)
  }
  t.ok(statuses('POST /token').has(200), 'the fuzzer got tokens issued (it reached the grants, not only the parser)')
  t.ok(statuses('POST /token').has(401) && statuses('POST /token').has(400), 'and client authentication and grant errors')
  t.ok(statuses('GET /authorize').has(200) && statuses('GET /authorize').has(302), 'login pages and redirects to the client')
  t.ok(statuses('POST /login').has(303) && statuses('POST /login').has(403), 'the login form signed people in and refused bad CSRF tokens')
  t.ok(statuses('GET /userinfo').has(200), 'userinfo answered claims')
  t.ok(statuses('POST /introspect').has(200) && statuses('POST /revoke').has(200), 'introspection and revocation answered')
  t.ok(statuses('POST /par').has(201) && statuses('POST /par').has(400) && statuses('POST /par').has(401), 'pushes were kept, refused and unauthenticated')

  // Still healthy, and real users can still sign in and refresh.
  t.equal((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, '/healthz')
  t.equal((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, '/readyz')
  const after = await h.app.inject({ method: 'POST', url: '/token', remoteAddress: '10.99.99.99', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: CLI }, payload: form({ grant_type: 'password', username: 'carol', password: 'carol-password' }) })
  t.equal(after.statusCode, 200, 'a user still signs in')
  t.equal((await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: after.json().refresh_token })).statusCode, 200, 'and refreshes')
  const { code } = await browserLogin(h, {}, 'carol-password', 'carol', '10.99.99.98')
  t.equal((await exchangeCode(h, code)).statusCode, 200, 'the browser flow works')
  t.notMatch(h.logs.text, /"level":50/, 'no error-level log line (nothing unexpected happened)')
})
