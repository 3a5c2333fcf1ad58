/**
 * Issue 20, defect 3: Redis restarting empty took the auth service down until it was restarted.
 * Users and clients were seeded only at start, so every login afterwards was 401 invalid_client
 * while /readyz said ready. Now the running service notices the lost directory (on reconnection,
 * on readiness probes, on a timer), seeds it again from the config file, and /readyz is 503 until
 * it has. Real processes: the built auth service and a private redis-server, restarted empty.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { eventually, getJson, postToken, startStack } from '@gatehouse/test-harness'

const REPORTING = 'Basic ' + Buffer.from('reporting-service:reporting-secret').toString('base64')

t.test('Redis restarted empty: identities come back without a restart; readiness tells the truth', async (t) => {
  const { redis, issuer, auth } = await startStack(t, { auth: { COOKIE_SECRET: randomBytes(32).toString('base64url') }, resource: false })
  const pid = auth.child.pid

  const statuses: number[] = []
  const clientToken = async (): Promise<number> => {
    const res = await postToken(issuer, { grant_type: 'client_credentials', scope: 'documents:read' }, REPORTING)
    statuses.push(res.status)
    return res.status
  }
  const login = async (): Promise<number> => {
    const res = await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' })
    statuses.push(res.status)
    return res.status
  }
  t.equal(await clientToken(), 200)
  t.equal(await login(), 200)
  t.match((await getJson(`${issuer}/readyz`)).body, { status: 'ready', checks: { directory: 'ok' } })

  // 1. Redis restarts with nothing in it (no persistence): users, clients and markers are gone.
  await redis.restart()
  const back = Date.now()
  await eventually('a client_credentials token again', clientToken, (s) => s === 200, 15_000)
  await eventually('a password login again', login, (s) => s === 200, 15_000)
  t.ok(Date.now() - back < 15_000, `logins work again ${Date.now() - back} ms after Redis came back`)
  t.equal(auth.child.pid, pid, 'the same auth process: no restart')
  t.equal(auth.child.exitCode, null)
  t.ok(auth.output.some((l) => /"event":"directory.reseeded"/.test(l)), 'the re-seeding is logged')
  t.match((await getJson(`${issuer}/readyz`)).body, { status: 'ready', checks: { directory: 'ok' } })

  // 2. The directory vanishes with Redis up (FLUSHALL): the first readiness probe says so, and seeds it.
  const c = await redis.client()
  t.teardown(() => c.close())
  await c.call('FLUSHALL')
  const reseededBefore = auth.output.filter((l) => /"event":"directory.reseeded"/.test(l)).length
  const probe = await getJson(`${issuer}/readyz`)
  // The service's own timer may have noticed first; if it already finished, the probe is rightly ready.
  if (auth.output.filter((l) => /"event":"directory.reseeded"/.test(l)).length === reseededBefore) {
    t.equal(probe.status, 503, '/readyz is 503 while the directory is missing')
    t.match(probe.body, { status: 'unavailable', checks: { directory: 'missing' } })
  }
  await eventually('ready again', () => getJson(`${issuer}/readyz`), (r) => r.status === 200, 10_000)
  t.equal(await clientToken(), 200, 'and the client is back')
  t.equal(await login(), 200)

  t.equal(statuses.filter((s) => s >= 500 && s !== 503).length, 0, 'no 500s throughout (503 while Redis was away)')
  t.ok(statuses.every((s) => s === 200 || s === 503 || s === 401), `statuses seen: ${[...new Set(statuses)].join(', ')}`)
})
