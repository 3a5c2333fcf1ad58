/**
 * Issue 20, defect 1: a revocation must not be lost when the connection to Redis breaks right
 * after the rotate script answered `reused`. Real processes: a private redis-server, the built
 * auth service talking to it through a TCP proxy that cuts every connection the moment the
 * `reused` reply has been delivered, and the built resource service subscribed to Redis directly.
 *
 * Before the fix the grant published in a second call on the dead connection (not wrapped, so a
 * 500), and nothing reached the recent set or the channel: the resource kept accepting the
 * family's access tokens, and a later /revoke of the same token announced nothing either.
 * Now the rotate script records the revocation in the same step (recent set + PUBLISH): the
 * client gets 400 invalid_grant (or 503), never a 500; the resource rejects the family's access
 * token; and a /revoke of the already revoked family announces it again (repair of a lost one).
 */
import t from 'tap'
import { eventually, postForm, startProxy, startRedis, startStack, type ServiceProcess } from '@gatehouse/test-harness'

/** service-kit's RECENT_REVOCATIONS_KEY (the root package does not depend on service-kit). */
const RECENT_REVOCATIONS_KEY = 'gatehouse:revocations:recent'

async function me(resource: ServiceProcess, accessToken: string): Promise<number> {
  return (await fetch(`${resource.url}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status
}

function sidOf(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sid?: unknown }
  if (typeof payload.sid !== 'string') throw new Error('the access token has no sid')
  return payload.sid
}

t.test('the connection cut right after the rotate script answered "reused": the revocation is not lost, no 500', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const proxy = await startProxy(redis.port)
  t.teardown(() => proxy.close())
  const admin = await redis.client()
  t.teardown(() => admin.close())

  const { issuer, auth, resource } = await startStack(t, {
    redis,
    // The auth service reaches Redis through the proxy; the resource service directly.
    authRedisUrl: `redis://127.0.0.1:${proxy.port}`,
    // Grace 0: presenting the spent token once is reuse, at once.
    auth: { ACCESS_TOKEN_TTL: '300', REFRESH_REUSE_GRACE: '0' },
    timeoutMs: 30_000, // start-up on a loaded machine; the fault timings below do not depend on it
  })

  const login = await postForm(`${issuer}/token`, { grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.status, 200, 'logged in')
  const rotated = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token! })
  t.equal(rotated.status, 200, 'rotated once')
  const accessToken = rotated.body.access_token!
  const sid = sidOf(accessToken)
  t.equal(await me(resource, accessToken), 200, 'the resource accepts the access token before the fault')

  // The attacker's (or a stale copy's) presentation of the spent token: the script revokes the
  // family and answers `reused`; the proxy delivers that reply, then cuts every connection.
  const cut = proxy.cutAfterReply('reused')
  const reuse = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token! })
  await cut
  t.not(reuse.status, 500, 'never a 500')
  t.ok(reuse.status === 400 || reuse.status === 503, `400 invalid_grant or 503 (got ${reuse.status} ${JSON.stringify(reuse.body)})`)
  if (reuse.status === 400) t.equal(reuse.body.error, 'invalid_grant')
  else t.equal(reuse.body.error, 'temporarily_unavailable')

  t.ok((await admin.call('ZSCORE', RECENT_REVOCATIONS_KEY, sid)) !== null, 'the revocation is in the recent set')
  t.equal(await admin.call('HGET', `gatehouse:fam:{${sid}}`, 'revoked'), '1', 'the family is revoked')
  const denied = await eventually('the resource to reject the revoked family', () => me(resource, accessToken), (s) => s === 401)
  t.equal(denied, 401, "the resource rejects the family's access token")
  t.ok(auth.output.some((l) => l.includes('"event":"refresh_token.reuse_detected"')), 'reuse is logged')

  // An operator's repair: the entry is lost (trimmed, a subscriber missed it); a later /revoke of
  // the same, already revoked, token announces it again.
  await eventually('auth to be ready again', async () => (await fetch(`${issuer}/readyz`)).status, (s) => s === 200)
  t.equal(await admin.call('ZREM', RECENT_REVOCATIONS_KEY, sid), 1)
  const revoke = await postForm(`${issuer}/revoke`, { token: rotated.body.refresh_token!, token_type_hint: 'refresh_token' })
  t.equal(revoke.status, 200, '/revoke answers 200')
  t.ok((await admin.call('ZSCORE', RECENT_REVOCATIONS_KEY, sid)) !== null, 'a revoke of the revoked family announces it again')

  t.notOk(auth.output.some((l) => /"statusCode":500|"status":500|server_error/.test(l)), 'no 500 in the auth log')
})
