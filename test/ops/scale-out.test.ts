/**
 * Scale-out on a Redis Cluster (issue 21): three auth replicas and three resource replicas as real
 * processes on a 3-master Cluster, the auth replicas sharing their signing key and COOKIE_SECRET
 * (helpers.ts, as replicas.test.ts). Each resource replica subscribes to the revocation feed
 * through a different master (REDIS_URL of one node: classic PUBLISH reaches every node), and
 * each catches up from the recent set, which two of them read by following the Cluster's MOVED.
 *  (a) families logged in across the replicas are spread over all three masters (their
 *      `{familyId}` hash tag), each family's keys on exactly one;
 *  (b) the same refresh token sent to all three replicas at once never forks the family: every
 *      accepted answer carries the same successor (DESIGN §5's grace rule), no reuse is detected,
 *      and that one successor rotates afterwards;
 *  (c) a revocation (POST /revoke, and reuse detection) makes every resource replica reject the
 *      family's access token, and each replica's /metrics shows it served traffic;
 *  (d) a burst of refresh and client_credentials requests round-robin over the replicas: all 200.
 * Counts and behaviour only, never timings.
 */
import t from 'tap'
import { RESOURCE_SCRIPT, basicAuth, eventually, getJson, postForm, postToken, startRedisCluster, withClient, type ServiceProcess } from '@gatehouse/test-harness'
import { REVOCATION_CHANNEL } from '../../packages/service-kit/src/revocation.js'
import { metric, scrape, startAuthReplicas, startReplica } from './helpers.js'

const FAMILY_KEYS = 'gatehouse:fam:{*'
const USERS = [
  { username: 'alice', password: 'alice-password' },
  { username: 'bob', password: 'bob-password' },
]
const SERVICE = basicAuth('reporting-service', 'reporting-secret')

/** `<familyId>.<generation>.<mac>` (README: refresh tokens). */
function familyOf(refreshToken: string): string {
  return refreshToken.split('.')[0] ?? ''
}

/** Every key matching `pattern` on one node (SCAN, never KEYS). */
async function scanKeys(port: number, pattern: string): Promise<string[]> {
  return await withClient(port, async (c) => {
    const out: string[] = []
    let cursor = '0'
    do {
      const [next, keys] = (await c.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000')) as [string, string[]]
      cursor = next
      out.push(...keys)
    } while (cursor !== '0')
    return out
  })
}

t.test('three auth and three resource replicas on a 3-master Redis Cluster', async (t) => {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 })
  t.teardown(() => cluster.stop())
  const masters = await cluster.masters()
  t.equal(masters.length, 3, 'three masters')
  const { issuer, replicas: auths } = await startAuthReplicas(t, 3, { REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') })
  const resources: ServiceProcess[] = await Promise.all(masters.map((port) => startReplica(t, RESOURCE_SCRIPT, { ISSUER: issuer, REDIS_URL: `redis://127.0.0.1:${port}` })))
  // Every resource replica has SUBSCRIBEd on its node (PUBSUB NUMSUB counts a node's own
  // subscribers) and read the recent set, which only the master of its slot holds: the other two
  // follow the MOVED redirection (revocation-feed.ts). /readyz reports the feed `live`.
  for (const port of masters) {
    await eventually('the revocation feed to subscribe', () => withClient(port, async (c) => (await c.call('PUBSUB', 'NUMSUB', REVOCATION_CHANNEL)) as [string, number]), (r) => Number(r[1]) >= 1, 20_000)
  }
  for (const [i, r] of resources.entries()) {
    const ready = await eventually('the revocation feed to catch up', () => getJson(`${r.url}/readyz`), (res) => (res.body.checks as Record<string, unknown> | undefined)?.revocations === 'live', 20_000)
    t.equal(ready.status, 200, `resource replica ${i + 1} (through master ${i + 1}) is ready, its feed live`)
  }

  const auth = (i: number): string => auths[i % auths.length]!.url
  const login = async (i: number): Promise<{ access_token: string; refresh_token: string }> => {
    const u = USERS[i % USERS.length]!
    const res = await postToken(auth(i), { grant_type: 'password', ...u })
    if (res.status !== 200) throw new Error(`login at ${auth(i)} failed: ${res.status} ${JSON.stringify(res.body)}`)
    return res.body as { access_token: string; refresh_token: string }
  }
  const refresh = async (url: string, refreshToken: string) => await postToken(url, { grant_type: 'refresh_token', refresh_token: refreshToken })
  const reuseDetected = async (): Promise<number> => {
    let sum = 0
    for (const a of auths) sum += metric(await scrape(a.url), 'gatehouse_refresh_reuse_detected_total')
    return sum
  }

  // 48 families, logged in round-robin over the replicas, a few at a time.
  const families: { access_token: string; refresh_token: string }[] = []
  for (let i = 0; i < 48; i += 6) families.push(...(await Promise.all(Array.from({ length: 6 }, (_, j) => login(i + j)))))

  t.test('(a) families land on every master, each on exactly one', async (t) => {
    const ids = families.map((f) => familyOf(f.refresh_token))
    t.equal(new Set(ids).size, 48, '48 distinct families')
    const perMaster = await Promise.all(masters.map(async (port) => new Set((await scanKeys(port, FAMILY_KEYS)).map((k) => /\{([^}]+)\}/.exec(k)?.[1]))))
    for (const [i, held] of perMaster.entries()) t.ok(ids.some((id) => held.has(id)), `master ${i + 1} holds some of the families (${ids.filter((id) => held.has(id)).length})`)
    const placements = ids.map((id) => perMaster.filter((held) => held.has(id)).length)
    t.same(placements, ids.map(() => 1), 'every family\'s keys are on exactly one master')
  })

  t.test('(b) the same token at three replicas at once: one successor, no fork', async (t) => {
    const reuseBefore = await reuseDetected()
    let accepted = 0
    let refused = 0
    for (const f of families.slice(0, 20)) {
      const answers = await Promise.all(auths.map((a) => refresh(a.url, f.refresh_token)))
      const ok = answers.filter((r) => r.status === 200)
      accepted += ok.length
      refused += answers.length - ok.length
      for (const r of answers.filter((r) => r.status !== 200)) t.same([r.status, r.body.error], [400, 'invalid_grant'], 'a refused answer is invalid_grant')
      t.ok(ok.length >= 1, 'at least one replica rotates')
      const successors = new Set(ok.map((r) => r.body.refresh_token))
      t.equal(successors.size, 1, 'every accepted answer carries the same successor')
      const successor = [...successors][0] as string
      t.equal(familyOf(successor), familyOf(f.refresh_token), 'in the same family')
      // The one live successor: it rotates (the family was neither forked nor revoked).
      const next = await refresh(auth(1), successor)
      t.equal(next.status, 200, 'the successor rotates')
      f.refresh_token = next.body.refresh_token as string
      f.access_token = next.body.access_token as string
    }
    t.equal(accepted + refused, 60)
    t.equal(await reuseDetected(), reuseBefore, 'no reuse detected: concurrent retries are within the grace rule')
  })

  t.test('(c) a revocation reaches every resource replica', async (t) => {
    const before = await Promise.all(resources.map((r) => scrape(r.url)))
    const [byRevoke, byReuse] = [families[20]!, families[21]!]
    for (const f of [byRevoke, byReuse]) {
      for (const r of resources) t.equal((await getJson(`${r.url}/me`, f.access_token)).status, 200, 'accepted before the revocation')
    }
    const revoked = await postForm(`${auth(2)}/revoke`, { token: byRevoke.refresh_token, token_type_hint: 'refresh_token' })
    t.equal(revoked.status, 200, 'POST /revoke of the refresh token')
    // Reuse: rotate twice, then present the first token again (two generations back).
    const r1 = await refresh(auth(0), byReuse.refresh_token)
    const r2 = await refresh(auth(1), r1.body.refresh_token as string)
    t.equal(r2.status, 200)
    t.equal((await refresh(auth(2), byReuse.refresh_token)).body.error, 'invalid_grant', 'reuse detected')
    for (const [what, token] of [['revoked', byRevoke.access_token], ['reused', byReuse.access_token], ['reused, latest', r2.body.access_token as string]] as const) {
      for (const [i, r] of resources.entries()) {
        const denied = await eventually(`the revocation to reach resource replica ${i + 1}`, () => getJson(`${r.url}/me`, token), (res) => res.status === 401, 10_000)
        t.match(denied.headers.get('www-authenticate'), /error="invalid_token"/, `resource replica ${i + 1} rejects the ${what} family's access token`)
      }
    }
    // A family nobody revoked is still accepted everywhere.
    for (const r of resources) t.equal((await getJson(`${r.url}/me`, families[22]!.access_token)).status, 200, 'another family is unaffected')
    const after = await Promise.all(resources.map((r) => scrape(r.url)))
    for (const [i] of resources.entries()) {
      const served = metric(after[i]!, 'http_request_duration_seconds_count', { route: '/me' }) - metric(before[i]!, 'http_request_duration_seconds_count', { route: '/me' })
      t.ok(served >= 4, `resource replica ${i + 1} served /me (${served} requests)`)
      t.ok(metric(after[i]!, 'http_request_duration_seconds_count', { route: '/me', status_code: '401' }) >= 3, `resource replica ${i + 1} answered 401s`)
    }
  })

  t.test('(d) a burst round-robin over the replicas all succeeds', async (t) => {
    const chains = families.slice(23, 47)
    const before = await Promise.all(auths.map((a) => scrape(a.url)))
    const n = 96
    const answers = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        if (i % 4 === 0) {
          const f = chains[(i / 4) % chains.length]!
          return await refresh(auth(i), f.refresh_token)
        }
        return await postToken(auth(i), { grant_type: 'client_credentials', scope: 'internal:read' }, SERVICE)
      }),
    )
    const statuses: Record<number, number> = {}
    for (const r of answers) statuses[r.status] = (statuses[r.status] ?? 0) + 1
    t.same(statuses, { 200: n }, `all ${n} requests answered 200`)
    const after = await Promise.all(auths.map((a) => scrape(a.url)))
    for (const [i] of auths.entries()) {
      const served = metric(after[i]!, 'http_request_duration_seconds_count', { route: '/token', status_code: '200' }) - metric(before[i]!, 'http_request_duration_seconds_count', { route: '/token', status_code: '200' })
      t.equal(served, n / auths.length, `auth replica ${i + 1} served its share (${served})`)
    }
  })
})
