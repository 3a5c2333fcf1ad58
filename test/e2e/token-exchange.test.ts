/**
 * A chain of services on behalf of a user (issue 15, DESIGN §10.4), with real processes: a private
 * redis-server, the built auth service with its dev config, and two built resource services, A
 * (`api://resource`, with REPORTS_URL pointing at B and the dev client `resource-service` to
 * exchange tokens as) and B (`AUDIENCE=api://reports`). Alice signs in; A exchanges her token
 * for B (RFC 8693) and calls B's /me, which sees Alice as `sub` and A as `act.sub`. Revoking her
 * family makes B refuse the exchanged token within a second (revocation feed, DESIGN §6).
 */
import t from 'tap'
import { CLI_BASIC, RESOURCE_SCRIPT, basicAuth, eventually, freePort, getJson, postForm, postToken, startService, startStack } from '@gatehouse/test-harness'

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
const AT = 'urn:ietf:params:oauth:token-type:access_token'

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

t.test('user → A → B with token exchange; revoking the family reaches B within a second', async (t) => {
  const { issuer, redis } = await startStack(t, { resource: false })
  const start = async (env: Record<string, string>) => {
    const service = await startService({ script: RESOURCE_SCRIPT, port: await freePort(), env: { LOG_LEVEL: 'info', ISSUER: issuer, REDIS_URL: redis.url, ...env }, readyPath: '/readyz' })
    t.teardown(() => service.stop())
    return service
  }
  const b = await start({ AUDIENCE: 'api://reports' })
  const a = await start({ AUDIENCE: 'api://resource', REPORTS_URL: b.url, EXCHANGE_CLIENT_ID: 'resource-service', EXCHANGE_CLIENT_SECRET: 'resource-service-secret' })

  const login = await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid documents:read reports:read' })
  t.equal(login.status, 200, 'alice signs in')
  const userToken = login.body.access_token!
  const alice = claimsOf(userToken)
  t.equal(claimsOf(userToken).aud, 'api://resource')
  t.equal((await getJson(`${b.url}/me`, userToken)).status, 401, "B does not take a token for A's audience")

  const seen = await getJson(`${a.url}/reports/me`, userToken)
  t.equal(seen.status, 200, 'A called B for alice')
  t.match(seen.body, { sub: alice.sub, client_id: 'resource-service', scope: 'reports:read', act: { sub: 'resource-service' } }, "B sees alice, and A acting")
  t.same(seen.body.roles, [], 'no roles: the resource-service client is not allowed them')
  t.equal((await getJson(`${a.url}/reports/me`, userToken)).status, 200, 'again (the exchanged token is cached by A)')
  t.equal(a.output.filter((l) => l.includes('token_exchange.failed')).length, 0)

  // The same exchange, made here, to hold the token A uses.
  const exchanged = await postForm(`${issuer}/token`, { grant_type: GRANT, subject_token: userToken, subject_token_type: AT, audience: 'api://reports' }, basicAuth('resource-service', 'resource-service-secret'))
  t.equal(exchanged.status, 200)
  t.equal(exchanged.body.issued_token_type, AT)
  const downstream = exchanged.body.access_token!
  t.equal(claimsOf(downstream).sid, alice.sid, "the exchanged token carries alice's family")
  t.equal((await getJson(`${b.url}/me`, downstream)).status, 200)

  // Revoke alice's family (RFC 7009 with her refresh token): B refuses the exchanged token within a second.
  const revoked = await postForm(`${issuer}/revoke`, { token: login.body.refresh_token!, token_type_hint: 'refresh_token' }, CLI_BASIC)
  t.equal(revoked.status, 200)
  const since = Date.now()
  const refused = await eventually('B to refuse the exchanged token', () => getJson(`${b.url}/me`, downstream), (r) => r.status === 401, 1000)
  t.match(refused.headers.get('www-authenticate'), /error="invalid_token"/, `B refused the exchanged token within a second (${Date.now() - since} ms)`)
  t.equal((await getJson(`${a.url}/reports/me`, userToken)).status, 401, "A refuses alice's own token too")
  const again = await postForm(`${issuer}/token`, { grant_type: GRANT, subject_token: userToken, subject_token_type: AT, audience: 'api://reports' }, basicAuth('resource-service', 'resource-service-secret'))
  t.equal(again.body.error, 'invalid_request', 'the revoked token cannot be exchanged any more')
})
