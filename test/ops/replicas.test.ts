/**
 * Several replicas on one Redis (issue 6, DESIGN §9 "stateless services that scale
 * horizontally"): two auth processes and two resource processes, the auth replicas sharing one
 * SIGNING_KEYS_FILE and one COOKIE_SECRET (which keys the refresh-token MACs), as a Deployment's
 * pods do. A refresh token issued by one replica rotates on the other, a retry within the grace
 * window gets the same successor whichever replica answers, reuse is detected whichever replica
 * sees it, both sign with the same key, and both resource replicas drop the revoked family's
 * access tokens.
 */
import t from 'tap'
import { decodeProtectedHeader } from 'jose'
import { startRedis, RESOURCE_SCRIPT, eventually, getJson, postToken } from '@gatehouse/test-harness'
import { collectLines, metric, scrape, startAuthReplicas, startReplica } from './helpers.js'

t.test('two auth and two resource replicas on one Redis', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // One public issuer URL for the Deployment; here replica A's address stands for it.
  const { issuer, replicas } = await startAuthReplicas(t, 2, { REDIS_URL: redis.url })
  const authA = replicas[0]!
  const authB = replicas[1]!
  const logsA = collectLines(authA.child)
  const logsB = collectLines(authB.child)
  const A = authA.url
  const B = authB.url
  const [resource1, resource2] = await Promise.all([
    // R1 finds the keys through discovery (replica A), R2 is pointed at replica B's JWKS.
    startReplica(t, RESOURCE_SCRIPT, { ISSUER: issuer, REDIS_URL: redis.url }),
    startReplica(t, RESOURCE_SCRIPT, { ISSUER: issuer, REDIS_URL: redis.url, JWKS_URI: `${B}/jwks.json` }),
  ])

  const login = async (replica: string, username = 'alice', password = 'alice-password') => {
    const res = await postToken(replica, { grant_type: 'password', username, password })
    if (res.status !== 200) throw new Error(`login at ${replica} failed: ${res.status} ${JSON.stringify(res.body)}`)
    return res.body as { access_token: string; refresh_token: string }
  }
  const refresh = async (replica: string, refreshToken: string) => await postToken(replica, { grant_type: 'refresh_token', refresh_token: refreshToken })

  t.test('both replicas publish the same keys and sign with the same kid', async (t) => {
    const [jwksA, jwksB] = await Promise.all([getJson(`${A}/jwks.json`), getJson(`${B}/jwks.json`)])
    t.same(jwksA.body, jwksB.body, 'the same JWKS')
    t.equal(jwksA.headers.get('etag'), jwksB.headers.get('etag'), 'the same ETag')
    const [a, b] = await Promise.all([login(A), login(B)])
    const kidA = decodeProtectedHeader(a.access_token).kid
    t.ok(kidA, 'a kid')
    t.equal(decodeProtectedHeader(b.access_token).kid, kidA, 'the same signing key on both')
    for (const r of [resource1, resource2]) {
      t.equal((await getJson(`${r.url}/me`, a.access_token)).status, 200, 'A\'s token is accepted by every resource replica')
      t.equal((await getJson(`${r.url}/me`, b.access_token)).status, 200, 'B\'s token is accepted by every resource replica')
    }
  })

  t.test('rotation and retries across replicas; reuse detected where it is seen', async (t) => {
    const first = await login(A)
    const r1 = await refresh(B, first.refresh_token)
    t.equal(r1.status, 200, 'a refresh token issued by A rotates on B')
    const rt1 = r1.body.refresh_token as string
    t.not(rt1, first.refresh_token)

    const retry = await refresh(A, first.refresh_token)
    t.equal(retry.status, 200, 'the spent token retried on A within the grace window (a lost response)')
    t.equal(retry.body.refresh_token, rt1, 'gets the same successor: the family does not fork')

    const r2 = await refresh(A, rt1)
    t.equal(r2.status, 200, 'the successor rotates on A')
    const at2 = r2.body.access_token as string
    for (const r of [resource1, resource2]) t.equal((await getJson(`${r.url}/me`, at2)).status, 200)

    // The first token again, two generations back: no retry can explain it. B sees it.
    const reuse = await refresh(B, first.refresh_token)
    t.equal(reuse.status, 400)
    t.equal(reuse.body.error, 'invalid_grant', 'reuse is invalid_grant')
    t.equal((await refresh(A, r2.body.refresh_token as string)).body.error, 'invalid_grant', 'and the family is revoked on A too')
    t.ok(logsB.some((l) => l.includes('"event":"refresh_token.reuse_detected"')), 'B logged the reuse')
    for (const r of [resource1, resource2]) {
      const denied = await eventually('the revocation to reach the resource replica', () => getJson(`${r.url}/me`, at2), (res) => res.status === 401, 5000)
      t.match(denied.headers.get('www-authenticate'), /error="invalid_token"/, 'every resource replica drops the family\'s access token')
    }

    // The other way round: issued by B, reuse seen by A.
    const second = await login(B, 'bob', 'bob-password')
    const s1 = await refresh(A, second.refresh_token)
    const s2 = await refresh(B, s1.body.refresh_token as string)
    t.equal(s2.status, 200)
    t.equal((await refresh(A, second.refresh_token)).body.error, 'invalid_grant', 'A detects the reuse of a token B issued')
    t.ok(logsA.some((l) => l.includes('"event":"refresh_token.reuse_detected"')), 'A logged the reuse')
    t.equal((await refresh(B, s2.body.refresh_token as string)).body.error, 'invalid_grant', 'the family is revoked on B too')

    const [mA, mB] = await Promise.all([scrape(A), scrape(B)])
    t.equal(metric(mA, 'gatehouse_refresh_reuse_detected_total'), 1, 'A counted one reuse')
    t.equal(metric(mB, 'gatehouse_refresh_reuse_detected_total'), 1, 'B counted one reuse')
  })
})
