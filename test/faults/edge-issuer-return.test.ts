/**
 * Issue 20, defects 5 and 6, with real processes: the built auth and resource services.
 *
 * 5. The resource service was slow to trust a returning issuer: requests with a kid it had not
 *    cached spent the early-refetch budget and the cool-down while the issuer was away, and a
 *    failing fetch backed off up to 30 s, so when the issuer came back signing with a new key its
 *    tokens stayed 503 for 25-30 s. Now a new key verifies within about a second of the issuer
 *    answering again, and a flood of random kids still costs only the budgeted fetches.
 * 6. During the outage the resource service wrote one warning per request it could not check;
 *    now the first is logged and the rest are counted (a line per interval).
 *
 * The outage is the real thing: the auth service is frozen (SIGSTOP: connections accepted, nothing
 * answered), then killed (SIGKILL: connections refused), then started again, which gives it a new
 * signing key (no SIGNING_KEYS_FILE: a generated key per process).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { SignJWT, generateKeyPair } from 'jose'
import { freePort, startService, type ServiceProcess, AUTH_SCRIPT, RESOURCE_SCRIPT, eventually, postToken } from '@gatehouse/test-harness'
import { metric, scrape } from '../ops/helpers.js'

const COOKIE_SECRET = randomBytes(32).toString('base64url')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function me(resource: ServiceProcess, token: string): Promise<number> {
  const res = await fetch(`${resource.url}/me`, { headers: { authorization: `Bearer ${token}` } })
  await res.arrayBuffer()
  return res.status
}

t.test('an issuer that comes back with a new key is trusted within seconds; its outage logs O(1) lines', async (t) => {
  const authPort = await freePort()
  const issuer = `http://127.0.0.1:${authPort}`
  const startAuth = async (): Promise<ServiceProcess> => {
    const a = await startService({ script: AUTH_SCRIPT, port: authPort, env: { ISSUER: issuer, COOKIE_SECRET, LOG_LEVEL: 'warn' }, readyPath: '/readyz' })
    t.teardown(() => a.stop())
    return a
  }
  const login = async (): Promise<string> => {
    const res = await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' })
    if (res.status !== 200) throw new Error(`login answered ${res.status}`)
    return res.body.access_token as string
  }
  const auth1 = await startAuth()
  const resource = await startService({ script: RESOURCE_SCRIPT, port: await freePort(), env: { ISSUER: issuer, LOG_LEVEL: 'info' }, readyPath: '/readyz' })
  t.teardown(() => resource.stop())
  const statuses = new Map<number, number>()
  const call = async (token: string): Promise<number> => {
    const s = await me(resource, token)
    statuses.set(s, (statuses.get(s) ?? 0) + 1)
    return s
  }

  const old = await login()
  t.equal(await call(old), 200)

  // A token whose key the resource service has never seen, as the returning issuer's are.
  const stranger = await generateKeyPair('RS256')
  const strangerToken = await new SignJWT({ scope: 'documents:read', client_id: 'cli' })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'stranger' })
    .setIssuer(issuer)
    .setAudience('api://resource')
    .setSubject('someone')
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti(randomUUID())
    .sign(stranger.privateKey)

  // The outage: frozen, then gone. Requests keep coming, with the cached key and with unknown ones.
  let unverifiable = 0
  const during = async (ms: number): Promise<void> => {
    const until = Date.now() + ms
    while (Date.now() < until) {
      const batch = await Promise.all([call(old), ...Array.from({ length: 9 }, () => call(strangerToken))])
      t.equal(batch[0], 200, 'the cached key keeps verifying during the outage')
      for (const s of batch.slice(1)) {
        if (s === 503) unverifiable++
        else t.equal(s, 503, 'an unknown kid while the issuer is away is 503, not 401')
      }
      await sleep(20)
    }
  }
  const outageStart = Date.now()
  auth1.child.kill('SIGSTOP')
  await during(6_500) // longer than one JWKS fetch timeout (5 s): a fetch hangs, then fails
  auth1.child.kill('SIGKILL')
  await new Promise((r) => (auth1.child.exitCode !== null || auth1.child.signalCode !== null ? r(null) : auth1.child.once('exit', r)))
  await during(3_000)
  const outageS = Math.ceil((Date.now() - outageStart) / 1000)
  t.ok(unverifiable >= 50, `${unverifiable} requests could not be checked during the ${outageS} s outage`)

  // Defect 6: the warning is written once and counted (a line per 10 s), not once per request.
  const warned = resource.output.filter((l) => l.includes('access token cannot be checked'))
  t.ok(warned.length >= 1 && warned.length <= 1 + Math.ceil(outageS / 10), `${unverifiable} unverifiable requests, ${warned.length} warning line(s)`)
  t.match(warned[0], /"reason":"jwks_refresh_failing"/, 'the first in full, with its reason')
  // Failed JWKS fetches add about one line a second (a probe a second at most, single-flight).
  const warnings = resource.output.filter((l) => l.includes('"level":40')).length
  t.ok(warnings <= 5 + 2 * outageS, `every warning of the outage, JWKS fetch failures included: ${warnings} lines`)

  // Defect 5: the issuer comes back with a new key; its tokens verify within seconds.
  const auth2 = await startAuth()
  const fresh = await login()
  const back = Date.now()
  await eventually('the new key to verify', () => call(fresh), (s) => s === 200, 10_000)
  const took = Date.now() - back
  t.ok(took <= 3_000, `the returning issuer's new key verified after ${took} ms`)
  t.equal(await call(old), 401, "the dead process's key is gone with it")

  // A flood of random kids against the recovered issuer still costs only the budgeted fetches.
  const before = metric(await scrape(resource.url), 'gatehouse_verifier_jwks_fetches_total')
  const flood = async (): Promise<number> => {
    const k = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: randomUUID() }).setIssuer(issuer).setAudience('api://resource').setExpirationTime('5m').sign(stranger.privateKey)
    return await call(k)
  }
  const floodStatuses = await Promise.all(Array.from({ length: 300 }, flood))
  t.ok(floodStatuses.every((s) => s === 401), 'random kids are 401')
  const fetches = metric(await scrape(resource.url), 'gatehouse_verifier_jwks_fetches_total') - before
  t.ok(fetches <= 4, `300 random kids cost ${fetches} JWKS fetches`)

  t.equal(statuses.get(500) ?? 0, 0, 'no 500 at any point')
  t.same([...statuses.keys()].sort(), [200, 401, 503], 'only 200, 401 and 503 were seen')
  void auth2
})
