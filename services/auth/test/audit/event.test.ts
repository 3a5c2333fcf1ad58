import t from 'tap'
import { isAuditedEvent, isSecretName, toAuditEvent } from '../../src/audit/event.js'

t.test('which events the trail keeps', async (t) => {
  for (const name of ['login.succeeded', 'login.failed', 'login.locked', 'refresh_token.reuse_detected', 'family.revoked', 'session.ended', 'admin.user_disabled', 'admin.anything']) t.ok(isAuditedEvent(name), name)
  for (const name of ['token.issued', 'refresh_token.rotated', 'keys.reloaded', 'toString', '__proto__']) t.notOk(isAuditedEvent(name), name)
})

t.test('the actor: the operator when one acted, else the user or client the event names', async (t) => {
  t.match(toAuditEvent({ event: 'session.ended', session_id: 's1', sub: 'u_a', reason: 'admin', actor: 'ops' }, 1), { actorType: 'operator', actorId: 'ops', userId: 'u_a', sessionId: 's1', outcome: 'success' })
  t.match(toAuditEvent({ event: 'session.ended', session_id: 's1', sub: 'u_a', reason: 'logout' }, 1), { actorType: null, actorId: null })
  t.match(toAuditEvent({ event: 'login.succeeded', sub: 'u_a', client_id: 'web', ip: '::1' }, 1), { actorType: 'user', actorId: 'u_a', clientId: 'web', address: '::1' })
  t.match(toAuditEvent({ event: 'client.auth_failed', client_id: 'x'.repeat(1000), reason: 'bad secret' }, 1), { actorType: 'client', actorId: 'x'.repeat(256), outcome: 'failure' })
})

t.test('secret names', async (t) => {
  for (const n of ['password', 'client_secret', 'refresh_token', 'password_hash', 'secretHash', 'client_assertion', 'code_verifier', 'code', 'authorization', 'cookie', 'accessToken']) t.ok(isSecretName(n), n)
  for (const n of ['token_type', 'token_endpoint_auth_method', 'reason', 'user_ref', 'grant_types', 'kid', 'roles']) t.notOk(isSecretName(n), n)
})
