/**
 * The device authorization grant over HTTP (RFC 8628 §3.1–3.5): /device_authorization, the
 * polling answers at /token, the tokens it yields, discovery. The user's decision is made through
 * the verification page (device-page.test.ts drives it in detail); here it is one helper.
 * Runs on the memory store and on a private Redis.
 */
import t from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { basic, form } from '../helpers.js'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { DEVICE_GRANT, DeviceBrowser, FORM_HEADERS, poll, startDevice } from './device-harness.js'

const TV = { client_id: 'tv-secret', client_name: 'Living-room TV', client_secret: 'tv-secret-value', grant_types: [DEVICE_GRANT], scope: 'openid documents:read', audience: 'api://resource' }

const redisServer = await startRedis()
t.teardown(() => redisServer.stop())

/** The user approves (or denies) the request with `userCode` on the verification page. */
async function answer(h: OidcApp, userCode: string, action: 'approve' | 'deny' = 'approve'): Promise<void> {
  const browser = new DeviceBrowser(h)
  await browser.signIn()
  const confirm = await browser.enter(userCode)
  if (confirm.status !== 200) throw new Error(`confirmation page: ${confirm.status}`)
  const done = await browser.decide(confirm, action)
  if (done.status !== 200) throw new Error(`decision: ${done.status}`)
}

for (const backend of ['memory', 'redis'] as const) {
  const env: Record<string, string> = backend === 'redis' ? { REDIS_URL: redisServer.url, LOGIN_DELAY_MS: '0' } : { LOGIN_DELAY_MS: '0' }

  t.test(`${backend}: /device_authorization answers RFC 8628 §3.2`, async (t) => {
    const h = await startOidcApp({ env, clients: [TV] })
    t.teardown(h.close)
    const res = await startDevice(h, { client_id: 'cli-device', scope: 'openid' })
    t.equal(res.statusCode, 200, res.body)
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(res.headers['content-type'], /^application\/json/)
    const body = res.json()
    t.same(Object.keys(body).sort(), ['device_code', 'expires_in', 'interval', 'user_code', 'verification_uri', 'verification_uri_complete'])
    t.match(body.device_code, /^[A-Za-z0-9_-]{43}$/)
    t.match(body.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/)
    t.equal(body.verification_uri, `${h.issuer}/device`)
    t.equal(body.verification_uri_complete, `${h.issuer}/device?user_code=${body.user_code}`)
    t.equal(body.expires_in, 600)
    t.equal(body.interval, 5)
    t.notOk(h.logs.text.includes(body.device_code), 'the device code is never logged')

    const confidential = await startDevice(h, { scope: 'documents:read' }, basic('tv-secret', 'tv-secret-value'))
    t.equal(confidential.statusCode, 200, 'a confidential client authenticates as at /token')
    const defaultScope = await startDevice(h)
    t.equal(defaultScope.statusCode, 200)
  })

  t.test(`${backend}: /device_authorization refuses with RFC 6749 §5.2 errors`, async (t) => {
    const h = await startOidcApp({ env, clients: [TV] })
    t.teardown(h.close)
    const cases: [string, Awaited<ReturnType<typeof startDevice>>, number, string][] = [
      ['a client without the device grant', await startDevice(h, {}, basic('cli', 'cli-secret')), 400, 'unauthorized_client'],
      ['a wrong secret', await startDevice(h, {}, basic('tv-secret', 'nope')), 401, 'invalid_client'],
      ['an unknown client', await startDevice(h, { client_id: 'nobody' }), 401, 'invalid_client'],
      ['no client at all', await startDevice(h, {}), 401, 'invalid_client'],
      ['a scope the client may not have', await startDevice(h, { client_id: 'cli-device', scope: 'openid documents:write' }), 400, 'invalid_scope'],
      ['a repeated parameter', await h.app.inject({ method: 'POST', url: '/device_authorization', headers: FORM_HEADERS, payload: 'client_id=cli-device&scope=openid&scope=openid' }), 400, 'invalid_request'],
      ['JSON instead of a form', await h.app.inject({ method: 'POST', url: '/device_authorization', headers: { 'content-type': 'application/json' }, payload: '{"client_id":"cli-device"}' }), 400, 'invalid_request'],
    ]
    for (const [what, res, status, error] of cases) {
      t.equal(res.statusCode, status, what)
      t.equal(res.json().error, error, what)
      t.equal(res.headers['cache-control'], 'no-store', what)
    }
  })

  t.test(`${backend}: polling answers exactly as RFC 8628 §3.5, then tokens once`, async (t) => {
    const h = await startOidcApp({ env, clients: [TV] })
    t.teardown(h.close)
    const started = (await startDevice(h, { client_id: 'cli-device', scope: 'openid profile documents:read' })).json()
    const dc = started.device_code as string

    const first = await poll(h, dc)
    t.equal(first.statusCode, 400)
    t.equal(first.json().error, 'authorization_pending')
    t.equal(first.headers['cache-control'], 'no-store')

    h.clock.advance(4_000)
    const fast = await poll(h, dc)
    t.equal(fast.statusCode, 400)
    t.equal(fast.json().error, 'slow_down', 'polled sooner than the 5 s interval')
    h.clock.advance(5_000)
    t.equal((await poll(h, dc)).json().error, 'slow_down', 'the interval is 10 s now: 5 s is too soon')
    h.clock.advance(15_000)
    t.equal((await poll(h, dc)).json().error, 'authorization_pending', 'waiting the raised interval (15 s after two slow_downs) is fine')

    await answer(h, started.user_code)
    h.clock.advance(20_000)
    const ok = await poll(h, dc)
    t.equal(ok.statusCode, 200, ok.body)
    const tokens = ok.json()
    t.equal(tokens.token_type, 'Bearer')
    t.equal(tokens.scope, 'openid profile documents:read')
    t.ok(tokens.refresh_token, 'the client is allowed refresh_token')
    t.ok(tokens.id_token, 'openid: an ID token')
    const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url').toString())
    t.equal(claims.client_id, 'cli-device')
    t.ok(claims.sub)
    t.ok(claims.sid, 'a revocable sid, like every user token')
    t.notOk('roles' in claims, 'a public third-party client gets no roles')

    h.clock.advance(20_000)
    const again = await poll(h, dc)
    t.equal(again.statusCode, 400)
    t.equal(again.json().error, 'invalid_grant', 'the device code is single use')

    const issued = h.logs.events('token.issued').filter((e) => e.grant_type === DEVICE_GRANT)
    t.equal(issued.length, 1, 'token.issued logged once with the grant type')
    const metrics = await h.app.inject({ method: 'GET', url: '/metrics' })
    t.match(metrics.body, new RegExp(`grant_type="${DEVICE_GRANT}"`), 'the metric counts the grant type')

    // Revocable like every user token: revoking the refresh token ends the family.
    const revoke = await h.app.inject({ method: 'POST', url: '/revoke', headers: FORM_HEADERS, payload: form({ token: tokens.refresh_token, client_id: 'cli-device' }) })
    t.equal(revoke.statusCode, 200)
    const refresh = await h.app.inject({ method: 'POST', url: '/token', headers: FORM_HEADERS, payload: form({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'cli-device' }) })
    t.equal(refresh.json().error, 'invalid_grant')
    const introspected = await h.app.inject({ method: 'POST', url: '/introspect', headers: { ...FORM_HEADERS, authorization: basic('web', 'web-secret') }, payload: form({ token: tokens.access_token }) })
    t.same(introspected.json(), { active: false }, 'and its access token with it')
  })

  t.test(`${backend}: denied is access_denied; expired is expired_token; unknown is invalid_grant`, async (t) => {
    const h = await startOidcApp({ env, clients: [TV] })
    t.teardown(h.close)
    const denied = (await startDevice(h)).json()
    await answer(h, denied.user_code, 'deny')
    const res = await poll(h, denied.device_code)
    t.equal(res.statusCode, 400)
    t.equal(res.json().error, 'access_denied')

    const late = (await startDevice(h)).json()
    h.clock.advance(600_000)
    const expired = await poll(h, late.device_code)
    t.equal(expired.statusCode, 400)
    t.equal(expired.json().error, 'expired_token')

    t.equal((await poll(h, 'A'.repeat(43))).json().error, 'invalid_grant')
    const missing = await h.app.inject({ method: 'POST', url: '/token', headers: FORM_HEADERS, payload: form({ grant_type: DEVICE_GRANT, client_id: 'cli-device' }) })
    t.equal(missing.json().error, 'invalid_request', 'device_code is required')
    const notAllowed = await h.app.inject({ method: 'POST', url: '/token', headers: { ...FORM_HEADERS, authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: DEVICE_GRANT, device_code: denied.device_code }) })
    t.equal(notAllowed.json().error, 'unauthorized_client', 'a client without the grant cannot poll')
  })

  t.test(`${backend}: another client cannot poll someone else's device code, nor spend or slow it`, async (t) => {
    const h = await startOidcApp({ env, clients: [TV, { ...TV, client_id: 'other-device', client_secret: undefined, token_endpoint_auth_method: 'none', scope: 'openid' }] })
    t.teardown(h.close)
    const started = (await startDevice(h)).json()
    await answer(h, started.user_code)
    const stolen = await poll(h, started.device_code, 'other-device')
    t.equal(stolen.statusCode, 400)
    t.equal(stolen.json().error, 'invalid_grant')
    t.equal(h.logs.events('device.wrong_client').length, 1)
    const mine = await poll(h, started.device_code)
    t.equal(mine.statusCode, 200, 'the right client still gets its tokens')
  })
}

t.test('discovery names the endpoint and the grant', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.equal(doc.device_authorization_endpoint, `${h.issuer}/device_authorization`)
  t.ok(doc.grant_types_supported.includes(DEVICE_GRANT))
})
