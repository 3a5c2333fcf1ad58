import t from 'tap'
import { decodeJwt } from 'jose'
import { basic, makeApp, passwordLogin, token } from '../helpers.js'

t.test('refresh rotates, retries within grace, detects reuse after it', async (t) => {
  const h = await makeApp({ REFRESH_REUSE_GRACE: '10' })
  t.teardown(h.close)
  const first = (await passwordLogin(h.app)).json()
  const sid = decodeJwt(first.access_token).sid

  const r1 = await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })
  t.equal(r1.statusCode, 200)
  t.equal(r1.headers['cache-control'], 'no-store')
  const second = r1.json()
  t.not(second.refresh_token, first.refresh_token, 'rotated')
  t.equal(decodeJwt(second.access_token).sid, sid, 'same family')
  t.equal(h.logs.events('refresh_token.rotated').length, 1)

  // a lost response: the same token again within the grace window gets the same successor
  h.clock.advanceSeconds(5)
  const retry = await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })
  t.equal(retry.statusCode, 200)
  t.equal(retry.json().refresh_token, second.refresh_token, 'same successor, no fork')

  // after the grace window the spent token is reuse: the whole family dies
  h.clock.advanceSeconds(6)
  const reuse = await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })
  t.equal(reuse.statusCode, 400)
  t.equal(reuse.json().error, 'invalid_grant')
  const events = h.logs.events('refresh_token.reuse_detected')
  t.equal(events.length, 1)
  t.match(events[0], { family_id: sid, client_id: 'cli', sub: decodeJwt(first.access_token).sub, ip: '127.0.0.1' })
  const metrics = await h.app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /gatehouse_refresh_reuse_detected_total 1/)

  const current = await token(h.app, { grant_type: 'refresh_token', refresh_token: second.refresh_token })
  t.equal(current.statusCode, 400, 'the current token died with its family')
  t.equal(current.json().error, 'invalid_grant')
})

t.test('refresh checks client, scope and token shape', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const first = (await passwordLogin(h.app)).json()
  const other = await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token }, basic('web', 'web-secret'))
  t.equal(other.statusCode, 400)
  t.equal(other.json().error, 'invalid_grant', 'another client cannot use it')
  const narrowed = await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token, scope: 'documents:read' })
  t.equal(narrowed.statusCode, 200, 'the other client did not spend or revoke it')
  t.equal(narrowed.json().scope, 'documents:read')
  const wider = await token(h.app, { grant_type: 'refresh_token', refresh_token: narrowed.json().refresh_token, scope: 'internal:read' })
  t.equal(wider.json().error, 'invalid_scope')
  for (const bad of ['garbage', 'a.b.c', first.refresh_token.slice(0, -2) + 'AA', '']) {
    const r = await token(h.app, { grant_type: 'refresh_token', refresh_token: bad })
    t.equal(r.statusCode, 400)
    t.match(r.json().error, /invalid_grant|invalid_request/)
  }
  // a forged token naming the live family did not revoke it
  const still = await token(h.app, { grant_type: 'refresh_token', refresh_token: narrowed.json().refresh_token })
  t.equal(still.statusCode, 200)
})

t.test('idle and absolute expiry', async (t) => {
  const h = await makeApp({ REFRESH_TOKEN_TTL: '1000', REFRESH_TOKEN_IDLE_TTL: '300' })
  t.teardown(h.close)
  let rt = (await passwordLogin(h.app)).json().refresh_token
  for (let i = 0; i < 4; i++) {
    h.clock.advanceSeconds(240)
    const r = await token(h.app, { grant_type: 'refresh_token', refresh_token: rt })
    t.equal(r.statusCode, 200, `used within the idle window (${i})`)
    rt = r.json().refresh_token
  }
  h.clock.advanceSeconds(100) // 1060 s after login, 100 s after last use: past the absolute lifetime only
  const late = await token(h.app, { grant_type: 'refresh_token', refresh_token: rt })
  t.equal(late.json().error, 'invalid_grant', 'absolute expiry does not slide')

  let rt2 = (await passwordLogin(h.app)).json().refresh_token
  h.clock.advanceSeconds(301)
  const idle = await token(h.app, { grant_type: 'refresh_token', refresh_token: rt2 })
  t.equal(idle.json().error, 'invalid_grant', 'idle expiry')
})

t.test('20 concurrent refreshes of one token never fork and never 5xx', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const rt = (await passwordLogin(h.app)).json().refresh_token
  const results = await Promise.all(Array.from({ length: 20 }, () => token(h.app, { grant_type: 'refresh_token', refresh_token: rt })))
  t.same(new Set(results.map((r) => r.statusCode)), new Set([200]))
  t.equal(new Set(results.map((r) => r.json().refresh_token)).size, 1, 'one successor')
})
