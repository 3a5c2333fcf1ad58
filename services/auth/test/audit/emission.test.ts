/**
 * The service records its audit events in the trail at the places it logs them (audit() in
 * audit/trail.ts): sign-ins, failures, lockouts, reuse detections, revocations. Each event goes
 * to both once, and both say the same thing. (Admin actions: test/cli/audit.test.ts.)
 */
import t from 'tap'
import { decodeJwt } from 'jose'
import { basic, makeApp, passwordLogin, token, type TestApp } from '../helpers.js'

async function recorded(h: TestApp, event: string) {
  await h.deps.audit.flush()
  return (await h.deps.audit.search({ limit: 100, events: [event] })).events
}

t.test('password login: success and failure, in the log and the trail alike', async (t) => {
  const h = await makeApp({ LOGIN_DELAY_MS: '0' })
  t.teardown(h.close)
  const ok = await passwordLogin(h.app)
  t.equal(ok.statusCode, 200)
  const sub = decodeJwt(ok.json().access_token).sub
  t.match(await recorded(h, 'login.succeeded'), [{ outcome: 'success', actorType: 'user', actorId: sub, userId: sub, clientId: 'cli', address: '127.0.0.1' }])

  const bad = await passwordLogin(h.app, 'alice', 'not-her-password')
  t.equal(bad.statusCode, 400)
  const failed = await recorded(h, 'login.failed')
  t.match(failed, [{ outcome: 'failure', clientId: 'cli', address: '127.0.0.1', details: { reason: 'bad_credentials' } }])
  t.notMatch(JSON.stringify(failed), /not-her-password/, 'never the password')
  t.equal(h.logs.events('login.failed').length, failed.length, 'one log line per record')
  t.equal(h.logs.events('login.succeeded').length, 1)
})

t.test('lockout: login.locked with the scope', async (t) => {
  const h = await makeApp({ LOGIN_MAX_ATTEMPTS: '2', LOGIN_DELAY_MS: '0' })
  t.teardown(h.close)
  for (let i = 0; i < 2; i++) await passwordLogin(h.app, 'alice', `wrong-${i}-password`)
  const locked = await passwordLogin(h.app, 'alice', 'alice-password')
  t.equal(locked.statusCode, 400)
  t.match(await recorded(h, 'login.locked'), [{ outcome: 'failure', clientId: 'cli', address: '127.0.0.1', details: { scope: 'user' } }])
  t.equal((await recorded(h, 'login.failed')).length, 2)
})

t.test('refresh-token reuse: the detection and the family revoked', async (t) => {
  const h = await makeApp({ REFRESH_REUSE_GRACE: '10' })
  t.teardown(h.close)
  const first = (await passwordLogin(h.app)).json()
  const { sid, sub } = decodeJwt(first.access_token)
  t.equal((await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })).statusCode, 200)
  h.clock.advanceSeconds(11)
  t.equal((await token(h.app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })).statusCode, 400)
  const [reuse] = await recorded(h, 'refresh_token.reuse_detected')
  t.match(reuse, { outcome: 'failure', actorType: 'client', actorId: 'cli', userId: sub, familyId: sid, address: '127.0.0.1', time: h.clock.ms })
  t.notMatch(JSON.stringify(reuse), new RegExp(first.refresh_token.slice(-20)), 'never the token (its secret part)')
  t.match(await recorded(h, 'family.revoked'), [{ familyId: sid, userId: sub, details: { reason: 'reuse' } }])
})

t.test('revocation (RFC 7009) and failed client authentication', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const first = (await passwordLogin(h.app)).json()
  const { sid } = decodeJwt(first.access_token)
  const revoked = await h.app.inject({
    method: 'POST', url: '/revoke',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') },
    payload: new URLSearchParams({ token: first.refresh_token }).toString(),
  })
  t.equal(revoked.statusCode, 200)
  t.match(await recorded(h, 'token.revocation'), [{ actorType: 'client', actorId: 'cli', familyId: sid, details: { token_type: 'refresh_token', revoked: true } }])
  t.match(await recorded(h, 'family.revoked'), [{ familyId: sid, details: { reason: 'revocation' } }])

  const wrong = await token(h.app, { grant_type: 'password', username: 'alice', password: 'alice-password' }, basic('cli', 'wrong-secret'))
  t.equal(wrong.statusCode, 401)
  const [failed] = await recorded(h, 'client.auth_failed')
  t.match(failed, { outcome: 'failure', clientId: 'cli', address: '127.0.0.1' })
  t.notMatch(JSON.stringify(failed), /wrong-secret/)
})

t.test('the metric counts what the trail wrote', async (t) => {
  const h = await makeApp({ LOGIN_DELAY_MS: '0' })
  t.teardown(h.close)
  await passwordLogin(h.app)
  await passwordLogin(h.app, 'alice', 'wrong-password')
  const metrics = await h.app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /gatehouse_audit_events_total\{outcome="written"\} 2/)
})
