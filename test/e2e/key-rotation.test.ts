/**
 * Signing-key rotation under load, with real processes (issue 7, DESIGN §7): two auth replicas
 * sharing the key set in a private redis-server, the resource service in front, a load generator
 * of password-grant-free requests (refresh and client_credentials grants, API calls with fresh and
 * with older tokens), and the rotation steps run through the built `gatehouse` binary — or, in the
 * second test, taken by the replicas themselves on a schedule. Zero failed requests are allowed.
 *
 * Besides the resource service (whose verifier also refetches on an unknown kid), every token is
 * checked by two STRICT verifiers: jose remote key sets, one per replica, that refresh only when
 * their copy is as old as /jwks.json's max-age and never on an unknown kid. They pass only if
 * every key was published for longer than verifiers may cache the set before any replica signed
 * with it, and stayed published while tokens it signed were alive.
 */
import t, { type Test } from 'tap'
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { CLI_BASIC, CLI_SCRIPT, basicAuth, postToken, runProcess, startStack, type Stack } from '@gatehouse/test-harness'

// publish delay 2 + 1 + 1 = 4 s; activation 1 s ahead; retire delay 4 + 1 + 1 = 6 s
const JWKS_MAX_AGE = 2
const KEY_ENV = {
  SIGNING_KEYS_STORE: 'redis',
  SIGNING_KEYS_ENCRYPTION_SECRET: 'rotation-test-key-encryption-secret-0123456789',
  JWKS_MAX_AGE: String(JWKS_MAX_AGE),
  KEYS_RELOAD_INTERVAL: '1',
  KEY_ROTATION_MARGIN: '1',
  ACCESS_TOKEN_TTL: '4',
  COOKIE_SECRET: 'rotation-test-cookie-secret-0123456789abcdef',
  LOG_LEVEL: 'info',
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Waits until the wall clock reaches `at` (ms): the event the next rotation step waits for. */
async function until(at: number, boundMs = 30_000): Promise<void> {
  if (at - Date.now() > boundMs) throw new Error(`refusing to wait ${at - Date.now()} ms`)
  while (Date.now() < at) await sleep(Math.min(100, at - Date.now()))
}

/** Two auth replicas sharing the key set in Redis, and the resource service in front. */
async function startKeyStack(t: Test, extra: Record<string, string> = {}): Promise<Stack> {
  return await startStack(t, { authReplicas: 2, auth: { ...KEY_ENV, ...extra }, resource: { CLOCK_TOLERANCE: '1', LOG_LEVEL: 'warn' } })
}

interface Seen {
  kid: string
  iat: number
  replica: number
}

/**
 * The load: `workers` loops until stopped. Each round, through a replica chosen in turn, it takes
 * a fresh token (refresh grant, rotating its own refresh token; or client_credentials), calls the
 * resource service with it and with the worker's oldest still-valid token, and verifies both with
 * the strict verifiers of both replicas. Every failure is recorded with its reason.
 */
function loadGenerator(stack: Stack, refreshTokens: string[]) {
  const strict = stack.replicas.map((r) => createRemoteJWKSet(new URL(`${r.url}/jwks.json`), { cacheMaxAge: JWKS_MAX_AGE * 1000, cooldownDuration: JWKS_MAX_AGE * 1000 }))
  const failures: string[] = []
  const seen: Seen[] = []
  const verifiedKids = new Set<string>()
  let requests = 0
  let stopped = false

  const check = async (what: string, tokenValue: string, path: string): Promise<void> => {
    requests++
    const res = await fetch(`${stack.resource.url}${path}`, { headers: { authorization: `Bearer ${tokenValue}` } })
    if (res.status !== 200) failures.push(`${what}: resource ${path} answered ${res.status} ${await res.text()}`)
    for (const [i, keys] of strict.entries()) {
      try {
        await jwtVerify(tokenValue, keys, { issuer: stack.issuer, audience: 'api://resource', typ: 'at+jwt', clockTolerance: 1 })
        verifiedKids.add(decodeProtectedHeader(tokenValue).kid!)
      } catch (err) {
        failures.push(`${what}: strict verifier of replica ${i} refused kid ${decodeProtectedHeader(tokenValue).kid}: ${(err as Error).message}`)
      }
    }
  }

  const worker = async (w: number): Promise<void> => {
    let refresh = refreshTokens[w]!
    const held: { token: string; exp: number; path: string }[] = []
    for (let round = 0; !stopped; round++) {
      const replica = (w + round) % stack.replicas.length
      const url = stack.replicas[replica]!.url
      const userRound = w % 2 === 0
      requests++
      const got = userRound
        ? await postToken(url, { grant_type: 'refresh_token', refresh_token: refresh }, CLI_BASIC)
        : await postToken(url, { grant_type: 'client_credentials', scope: 'internal:read' }, basicAuth('reporting-service', 'reporting-secret'))
      if (got.status !== 200) {
        failures.push(`worker ${w}: ${userRound ? 'refresh' : 'client_credentials'} at replica ${replica} answered ${got.status} ${JSON.stringify(got.body)}`)
        continue
      }
      if (userRound) refresh = got.body.refresh_token!
      const fresh = got.body.access_token!
      const claims = decodeJwt(fresh)
      seen.push({ kid: decodeProtectedHeader(fresh).kid!, iat: claims.iat!, replica })
      const path = userRound ? '/me' : '/internal'
      await check(`worker ${w} fresh token`, fresh, path)
      held.push({ token: fresh, exp: claims.exp!, path })
      // The oldest token still valid for another second: signed by an older key across a switch.
      while (held.length > 0 && held[0]!.exp * 1000 < Date.now() + 1000) held.shift()
      const old = held[0]
      if (old && old.token !== fresh) await check(`worker ${w} older token`, old.token, old.path)
    }
  }

  const running = Promise.all(Array.from({ length: refreshTokens.length }, (_, w) => worker(w)))
  return {
    failures,
    seen,
    verifiedKids,
    get requests() {
      return requests
    },
    async stop() {
      stopped = true
      await running
    },
  }
}

async function cli(stack: Stack, args: string[]): Promise<Record<string, unknown>> {
  const r = await runProcess([CLI_SCRIPT, ...args, '--json'], { ...stack.authEnv, GATEHOUSE_ACTOR: 'rotation-test' })
  if (r.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

async function logins(stack: Stack, n: number): Promise<string[]> {
  // Setup only: the load itself never uses the password grant.
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await postToken(stack.replicas[i % 2]!.url, { grant_type: 'password', username: i % 2 ? 'bob' : 'alice', password: i % 2 ? 'bob-password' : 'alice-password' }, CLI_BASIC)
    if (r.status !== 200) throw new Error(`login failed: ${JSON.stringify(r.body)}`)
    out.push(r.body.refresh_token!)
  }
  return out
}

t.test('manual rotation through the CLI under load: zero failed requests', async (t) => {
  const stack = await startKeyStack(t)
  const load = loadGenerator(stack, await logins(stack, 8))

  const before = (await cli(stack, ['keys', 'list'])) as { keys: { kid: string; state: string }[] }
  const first = before.keys.find((k) => k.state === 'active')!.kid
  await sleep(1000) // some load on the first key alone

  const added = (await cli(stack, ['keys', 'add-next'])) as { kid: string; activate_after: string }
  const next = added.kid
  await until(Date.parse(added.activate_after))
  const activated = (await cli(stack, ['keys', 'activate', next])) as { activate_at: string }
  const activateAt = Date.parse(activated.activate_at)
  await until(activateAt + 500)
  const listed = (await cli(stack, ['keys', 'list'])) as { keys: { kid: string; state: string; remove_after: string | null }[] }
  const retiring = listed.keys.find((k) => k.kid === first)!
  t.equal(retiring.state, 'retiring')
  await until(Date.parse(retiring.remove_after!))
  const retired = (await cli(stack, ['keys', 'retire', first, '--yes'])) as { keys: { kid: string }[] }
  t.same(retired.keys.map((k) => k.kid), [next])
  await sleep(2 * JWKS_MAX_AGE * 1000) // load on the new key alone, after verifiers refreshed

  await load.stop()
  t.same(load.failures, [], 'no request failed')
  t.ok(load.requests > 200, `${load.requests} requests`)
  t.ok(load.verifiedKids.has(first) && load.verifiedKids.has(next), 'tokens of both keys verified')

  // Every replica switched at the same instant: nothing signed by the new key before its
  // activation, nothing by the old one after (iat is whole seconds; activation too).
  const at = activateAt / 1000
  t.same(load.seen.filter((s) => s.kid === next && s.iat < at), [], 'the new key never signed early')
  t.same(load.seen.filter((s) => s.kid === first && s.iat >= at), [], 'the old key never signed late')
  for (const replica of [0, 1]) {
    t.ok(load.seen.some((s) => s.replica === replica && s.kid === first), `replica ${replica} signed with the first key`)
    t.ok(load.seen.some((s) => s.replica === replica && s.kid === next), `replica ${replica} signed with the next key`)
  }
  for (const r of stack.replicas) t.ok(r.output.some((l) => l.includes('"event":"keys.active_changed"') && l.includes(next)))
})

t.test('automatic rotation under load: each step taken by exactly one replica, zero failed requests', async (t) => {
  // Every 7 s a key is added (scheduled 4 s ahead), so each key signs for 7 s; retired 6 s later.
  const stack = await startKeyStack(t, { KEY_ROTATION_INTERVAL: '7' })
  const load = loadGenerator(stack, await logins(stack, 6))
  const deadline = Date.now() + 45_000
  const steps = (event: string) => stack.replicas.flatMap((r) => r.output.filter((l) => l.includes(`"event":"${event}"`)).map((l) => JSON.parse(l) as { kid: string }))
  // Until two keys have been added and retired (each roughly 7 s apart) and the load has been
  // served by at least two of them, bounded. The rotation runs from the replicas' start, not the
  // load's: on a slow machine the set-up logins can outlast the first steps, so counting only the
  // retirements could stop the load before a second key ever signed under it.
  const signedUnderLoad = () => new Set(load.seen.map((s) => s.kid)).size
  while ((steps('keys.retired').length < 2 || signedUnderLoad() < 2) && Date.now() < deadline) await sleep(200)
  await load.stop()

  const added = steps('keys.next_added')
  const retired = steps('keys.retired')
  t.ok(retired.length >= 2, `${added.length} keys added, ${retired.length} retired`)
  t.equal(new Set(added.map((e) => e.kid)).size, added.length, 'each key added by one replica only')
  t.equal(new Set(retired.map((e) => e.kid)).size, retired.length, 'each key retired by one replica only')
  t.same(load.failures, [], 'no request failed')
  const signers = new Set(load.seen.map((s) => s.kid))
  t.ok(signers.size >= 2, `tokens of ${signers.size} keys issued under load`)
  t.same([...signers].filter((kid) => !load.verifiedKids.has(kid)), [], 'and every one verified')
  t.ok(load.requests > 200, `${load.requests} requests`)
})
