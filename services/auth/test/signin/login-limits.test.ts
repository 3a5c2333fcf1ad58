/**
 * Brute-force limits through the HTTP endpoints (DESIGN §8, RFC 6749 §4.3.2): the password grant
 * and POST /login share the login gate. Locked, unknown and wrong look the same to the caller;
 * the audit log and the metrics tell them apart. The trusted-proxy setting decides which address
 * a limit applies to.
 */
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp } from '../../src/app.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import type { FastifyInstance } from 'fastify'
import { LoginGate, MAX_DELAY_MS, delayFor, type LoginGateOptions } from '../../src/signin/login-gate.js'
import { hashPassword, verifyPassword } from '../../src/directory/passwords.js'
import { s256 } from '../../src/authorize/pkce.js'
import { basic, form, LogCapture, type TestApp } from '../helpers.js'
import { ManualClock } from '@gatehouse/test-harness'

const LIMITS = { LOGIN_MAX_ATTEMPTS: '4', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '12', LOGIN_WINDOW: '600', LOGIN_LOCKOUT: '300', LOGIN_DELAY_MS: '100' }

interface GateSpy {
  sleeps: number[]
  kdf: number
}

/** The auth app (memory store) with a login gate whose sleep and KDF are observed. */
async function limitedApp(t: Test, env: Record<string, string> = {}, gate: Partial<LoginGateOptions> = {}): Promise<TestApp & { spy: GateSpy }> {
  const clock = new ManualClock()
  const config = await loadConfig({ LOG_LEVEL: 'info', ...LIMITS, ...env })
  const runtime = await createRuntime(config, { warn() {}, info() {} }, clock.now)
  const spy: GateSpy = { sleeps: [], kdf: 0 }
  const l = config.loginLimits
  runtime.deps.loginGate = new LoginGate({
    limiter: runtime.deps.loginGate.limiter,
    maxPerUser: l.maxAttempts,
    maxPerAddress: l.maxAttemptsPerAddress,
    delayMs: l.delayMs,
    sleep: async (ms) => {
      spy.sleeps.push(ms)
    },
    verify: async (phc, password) => {
      spy.kdf++
      return await verifyPassword(phc, password)
    },
    ...gate,
  })
  const logs = new LogCapture()
  const app = await buildApp(runtime.deps, { logStream: logs })
  await app.ready()
  const h = {
    app,
    deps: runtime.deps,
    config,
    clock,
    logs,
    spy,
    async close() {
      await app.close()
      await runtime.close()
    },
  }
  t.teardown(h.close)
  return h
}

async function passwordGrant(h: TestApp, username: string, password: string, headers: Record<string, string> = {}, remoteAddress?: string) {
  return await h.app.inject({
    method: 'POST',
    url: '/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret'), ...headers },
    payload: form({ grant_type: 'password', username, password }),
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  })
}

/** What a client could compare between two answers: status, body and headers other than per-request ones. */
function visible(res: LightMyRequestResponse) {
  const { date: _d, 'x-request-id': _r, ...headers } = res.headers
  return { status: res.statusCode, body: res.body, headers }
}

async function metric(h: TestApp, name: string): Promise<string[]> {
  const text = await h.deps.metrics.registry.metrics()
  return text.split('\n').filter((l) => l.startsWith(name))
}

t.test('password grant: the account locks after LOGIN_MAX_ATTEMPTS; locked looks exactly like wrong', async (t) => {
  const h = await limitedApp(t)
  const wrong = await passwordGrant(h, 'alice', 'wrong-1')
  t.equal(wrong.statusCode, 400)
  for (let i = 2; i <= 4; i++) t.equal((await passwordGrant(h, 'alice', `wrong-${i}`)).statusCode, 400)
  const kdfBefore = h.spy.kdf
  const locked = await passwordGrant(h, 'alice', 'alice-password')
  t.same(visible(locked), visible(wrong), 'the right password while locked: the same answer as a wrong one')
  t.same(locked.json(), { error: 'invalid_grant', error_description: 'invalid username or password' })
  t.equal(h.spy.kdf, kdfBefore, 'no KDF while locked (cheap to refuse)')
  const unknownLocked = await passwordGrant(h, 'ALICE', 'alice-password')
  t.same(visible(unknownLocked), visible(wrong), 'still locked, whatever the case of the name')

  t.equal(h.logs.events('login.failed').length, 4)
  t.match(h.logs.events('login.locked'), [
    { scope: 'user', locked_now: true, retry_after: 300, client_id: 'cli', ip: '127.0.0.1' },
    { scope: 'user', locked_now: false },
  ])
  t.match(await metric(h, 'gatehouse_login_lockouts_total'), ['gatehouse_login_lockouts_total{scope="user"} 2'])
  t.match(await metric(h, 'gatehouse_login_failures_total'), ['gatehouse_login_failures_total{reason="bad_credentials"} 4'])
  t.notOk(h.logs.text.includes('wrong-1') || h.logs.text.includes('alice-password'), 'no password in the log')

  h.clock.advanceSeconds(300)
  const after = await passwordGrant(h, 'alice', 'alice-password')
  t.equal(after.statusCode, 200, 'the lockout expired')
})

t.test('a user that does not exist locks the same way (no enumeration through the limiter)', async (t) => {
  const h = await limitedApp(t)
  const answers = []
  for (let i = 0; i < 6; i++) answers.push(visible(await passwordGrant(h, 'nobody-here', `x${i}`)))
  const known = []
  for (let i = 0; i < 6; i++) known.push(visible(await passwordGrant(h, 'bob', `x${i}`)))
  t.same(answers, known, 'the same sequence of answers for an unknown and a known user')
  t.same(h.logs.events('login.locked').length, 4)
})

t.test('the KDF runs once for unknown, disabled and known users alike', async (t) => {
  const h = await limitedApp(t)
  await h.deps.users.add({ username: 'dora', passwordHash: await hashPassword('dora-password'), disabled: true })
  const cases: [string, string][] = [
    ['alice', 'wrong'],
    ['no-such-user', 'wrong'],
    ['dora', 'dora-password'],
    ['x'.repeat(256), 'wrong'],
  ]
  const answers = []
  for (const [username, password] of cases) {
    const before = h.spy.kdf
    const res = await passwordGrant(h, username, password, {}, `192.0.2.${answers.length + 1}`)
    t.equal(h.spy.kdf - before, 1, `${username.slice(0, 12)}: one password verification`)
    answers.push(visible(res))
  }
  for (const a of answers.slice(1)) t.same(a, answers[0], 'indistinguishable answers')
})

t.test('progressive delay: half the attempts are free, then the wait doubles', async (t) => {
  t.same([0, 1, 2, 3, 4, 5].map((n) => delayFor(n, 4, 100)), [0, 0, 100, 200, 400, 800])
  t.equal(delayFor(40, 10, 250), MAX_DELAY_MS, 'capped')
  t.equal(delayFor(9, 10, 0), 0, 'LOGIN_DELAY_MS=0 disables it')

  const h = await limitedApp(t)
  for (let i = 0; i < 4; i++) await passwordGrant(h, 'bob', `nope-${i}`)
  t.same(h.spy.sleeps, [100, 200], 'the third and fourth attempts waited')
  t.match(await metric(h, 'gatehouse_login_delayed_total'), ['gatehouse_login_delayed_total 2'])
  t.match(h.logs.events('login.failed').map((e) => e.delayed_ms), [0, 0, 100, 200])
})

t.test('delayed attempts are bounded: beyond the bound, the answer is immediate and unchecked', async (t) => {
  const release: (() => void)[] = []
  let hold = true
  const h = await limitedApp(t, { LOGIN_MAX_ATTEMPTS: '20', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '1000' }, {
    maxDelayed: 2,
    sleep: async () => {
      if (hold) await new Promise<void>((resolve) => release.push(resolve))
    },
  })
  for (let i = 0; i < 10; i++) await passwordGrant(h, 'bob', `nope-${i}`)
  const kdf = h.spy.kdf
  const waiting = [passwordGrant(h, 'bob', 'a'), passwordGrant(h, 'bob', 'b')]
  const deadline = Date.now() + 5000
  while (release.length < 2 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
  t.equal(h.deps.loginGate.delayed, 2, 'two requests are waiting')
  const third = await passwordGrant(h, 'bob', 'bob-password')
  t.same(third.json(), { error: 'invalid_grant', error_description: 'invalid username or password' }, 'answered at once, generically')
  t.equal(h.spy.kdf, kdf, 'its password was never checked')
  t.match(h.logs.events('login.failed').at(-1), { reason: 'throttled' })
  t.match(await metric(h, 'gatehouse_login_throttled_total'), ['gatehouse_login_throttled_total 1'])
  hold = false
  for (const r of release) r()
  for (const res of await Promise.all(waiting)) t.equal(res.statusCode, 400)
  t.equal(h.deps.loginGate.delayed, 0)
  const ok = await passwordGrant(h, 'bob', 'bob-password')
  t.equal(ok.statusCode, 200, 'the throttled attempt was not counted')
})

t.test('a parallel burst of guesses: the KDF runs at most LOGIN_MAX_ATTEMPTS times', async (t) => {
  const h = await limitedApp(t)
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => passwordGrant(h, 'bob', `burst-${i}`)))
  t.ok(answers.every((a) => a.statusCode === 400 && a.json().error === 'invalid_grant'), 'all refused generically')
  t.equal(h.spy.kdf, 4, 'only the admitted guesses were checked')
  t.equal((await passwordGrant(h, 'bob', 'bob-password')).statusCode, 400, 'and the account is locked')
})

t.test('parallel logins with the right password all succeed (queued, not refused)', async (t) => {
  const h = await limitedApp(t, {}, { sleep: async (ms) => await new Promise((resolve) => setTimeout(resolve, ms)) })
  const answers = await Promise.all(Array.from({ length: 16 }, () => passwordGrant(h, 'alice', 'alice-password')))
  t.same(answers.map((a) => a.statusCode), Array(16).fill(200))
})

t.test('per address: spraying many usernames from one address locks the address', async (t) => {
  const h = await limitedApp(t)
  for (let i = 0; i < 12; i++) await passwordGrant(h, `user-${i}`, 'Password1', {}, '198.51.100.20')
  const kdf = h.spy.kdf
  const res = await passwordGrant(h, 'alice', 'alice-password', {}, '198.51.100.20')
  t.same(res.json(), { error: 'invalid_grant', error_description: 'invalid username or password' })
  t.equal(h.spy.kdf, kdf)
  t.match(h.logs.events('login.locked')[0], { scope: 'address', ip: '198.51.100.20' })
  t.match(await metric(h, 'gatehouse_login_lockouts_total'), ['gatehouse_login_lockouts_total{scope="address"} 1'])
  t.equal((await passwordGrant(h, 'alice', 'alice-password', {}, '198.51.100.21')).statusCode, 200, 'another address is not affected')
})

t.test('TRUST_PROXY unset: X-Forwarded-For is ignored, so rotating it does not escape the limit', async (t) => {
  const h = await limitedApp(t)
  for (let i = 0; i < 12; i++) await passwordGrant(h, `user-${i}`, 'x', { 'x-forwarded-for': `203.0.113.${i}` })
  const res = await passwordGrant(h, 'alice', 'alice-password', { 'x-forwarded-for': '203.0.113.200' })
  t.equal(res.statusCode, 400, 'the socket address (127.0.0.1) is locked')
  t.ok(h.logs.events('login.failed').every((e) => e.ip === '127.0.0.1'), 'the logged address is the socket’s')
})

t.test('TRUST_PROXY: behind the listed proxy the forwarded address is the client; anyone else cannot forge it', async (t) => {
  const h = await limitedApp(t, { TRUST_PROXY: '127.0.0.1, 10.0.0.0/8' })
  // Through the proxy: each forwarded client is its own bucket.
  for (let i = 0; i < 12; i++) await passwordGrant(h, `user-${i}`, 'x', { 'x-forwarded-for': '203.0.113.7' })
  t.equal((await passwordGrant(h, 'alice', 'alice-password', { 'x-forwarded-for': '203.0.113.7' })).statusCode, 400, 'the forwarded client is locked')
  t.equal((await passwordGrant(h, 'alice', 'alice-password', { 'x-forwarded-for': '203.0.113.8' })).statusCode, 200, 'another client behind the same proxy is not')
  t.equal((await passwordGrant(h, 'alice', 'alice-password', { 'x-forwarded-for': '203.0.113.7, 10.1.2.3' }, '10.9.9.9')).statusCode, 400, 'a chain of trusted proxies is walked back to the client')
  // Not from a trusted proxy: the header is the client's own claim and is ignored.
  const direct = await passwordGrant(h, 'alice', 'alice-password', { 'x-forwarded-for': '203.0.113.8' }, '192.0.2.99')
  t.equal(direct.statusCode, 200)
  t.match(h.logs.events('login.succeeded').at(-1), { ip: '192.0.2.99' })
})

t.test('the owner keeps signing in from a known address while an attacker elsewhere locks the account', async (t) => {
  const h = await limitedApp(t, { TRUST_PROXY: '127.0.0.1' })
  const home = { 'x-forwarded-for': '192.0.2.10' }
  t.equal((await passwordGrant(h, 'alice', 'alice-password', home)).statusCode, 200, 'the owner signs in from home')
  for (let i = 0; i < 5; i++) await passwordGrant(h, 'alice', `guess-${i}`, { 'x-forwarded-for': '198.51.100.66' })
  t.match(h.logs.events('login.locked')[0], { scope: 'user', ip: '198.51.100.66' })
  t.equal((await passwordGrant(h, 'alice', 'alice-password', { 'x-forwarded-for': '203.0.113.1' })).statusCode, 400, 'strangers are locked out')
  t.equal((await passwordGrant(h, 'alice', 'alice-password', home)).statusCode, 200, 'the owner is not')
})

t.test('POST /login: the same limits, the same page for locked and wrong', async (t) => {
  const h = await limitedApp(t, { ISSUER: 'http://127.0.0.1:4000' })
  const page = await h.app.inject({
    method: 'GET',
    url: '/authorize?' + new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: 'http://127.0.0.1:3000/callback', scope: 'openid', code_challenge: s256('v'.repeat(43)), code_challenge_method: 'S256' }),
  })
  t.equal(page.statusCode, 200)
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page.body)![1]!
  const fields = { interaction: field('interaction'), csrf: field('csrf') }
  const cookies = Object.fromEntries(page.cookies.map((c) => [c.name, c.value]))
  const login = async (password: string) =>
    await h.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form({ ...fields, username: 'alice', password }), cookies })
  const strip = (r: LightMyRequestResponse) => ({ ...visible(r), body: r.body.replace(/nonce="[^"]+"/, ''), headers: { ...visible(r).headers, 'content-security-policy': '' } })
  const first = await login('nope')
  t.equal(first.statusCode, 400)
  for (let i = 0; i < 3; i++) await login('nope')
  const locked = await login('alice-password')
  t.same(strip(locked), strip(first), 'the right password while locked gets the same page')
  t.match(locked.body, /The username or password is not correct\./)
  t.notOk(locked.cookies.some((c) => c.name === 'gh_session'), 'no session')
  t.match(h.logs.events('login.locked')[0], { scope: 'user', client_id: 'web' })
  h.clock.advanceSeconds(300)
  t.equal((await login('alice-password')).statusCode, 303, 'after the lockout the form works')
})

t.test('the password grant and the login form count against the same buckets', async (t) => {
  const h = await limitedApp(t)
  for (let i = 0; i < 4; i++) await passwordGrant(h, 'bob', `nope-${i}`)
  const page = await h.app.inject({
    method: 'GET',
    url: '/authorize?' + new URLSearchParams({ response_type: 'code', client_id: 'web', redirect_uri: 'http://127.0.0.1:3000/callback', scope: 'openid', code_challenge: s256('v'.repeat(43)), code_challenge_method: 'S256' }),
  })
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page.body)![1]!
  const res = await h.app.inject({
    method: 'POST',
    url: '/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ interaction: field('interaction'), csrf: field('csrf'), username: 'bob', password: 'bob-password' }),
    cookies: Object.fromEntries(page.cookies.map((c) => [c.name, c.value])),
  })
  t.equal(res.statusCode, 400, 'locked by the password-grant failures')
})

t.test('configuration', async (t) => {
  const problems = async (env: Record<string, string>) => {
    try {
      await loadConfig(env)
      return []
    } catch (err) {
      return err instanceof ConfigError ? [...err.problems] : [String(err)]
    }
  }
  const defaults = await loadConfig({})
  t.same(defaults.loginLimits, { maxAttempts: 10, maxAttemptsPerAddress: 100, window: 900, lockout: 900, delayMs: 250 })
  t.equal(defaults.trustProxy, false)
  t.same((await loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1, fd00::/8' })).trustProxy, ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8'])
  for (const bad of ['true', '2', '10.0.0.0/33', 'proxy.internal', '10.0.0.1/8/2']) {
    t.match(await problems({ TRUST_PROXY: bad }), [/TRUST_PROXY/], `TRUST_PROXY=${bad} is refused`)
  }
  t.match(await problems({ LOGIN_MAX_ATTEMPTS: '0', LOGIN_WINDOW: 'x', LOGIN_LOCKOUT: '0', LOGIN_DELAY_MS: '60000', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '-1' }), [
    /LOGIN_MAX_ATTEMPTS/,
    /LOGIN_MAX_ATTEMPTS_PER_ADDRESS/,
    /LOGIN_WINDOW/,
    /LOGIN_LOCKOUT/,
    /LOGIN_DELAY_MS/,
  ])
})

t.test('Redis: replicas share the counters', async (t) => {
  const { startRedis } = await import('@gatehouse/test-harness')
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const env = { ...LIMITS, REDIS_URL: redis.url, COOKIE_SECRET: 'c'.repeat(40), LOG_LEVEL: 'warn' }
  const clock = new ManualClock()
  const replicas: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const config = await loadConfig(env)
    const runtime = await createRuntime(config, { warn() {}, info() {} }, clock.now)
    const app = await buildApp(runtime.deps, { logStream: false })
    t.teardown(async () => {
      await app.close()
      await runtime.close()
    })
    replicas.push(app)
  }
  const grant = async (i: number, password: string) =>
    await replicas[i % 2]!.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ grant_type: 'password', username: 'alice', password }) })
  for (let i = 0; i < 4; i++) t.equal((await grant(i, 'wrong')).statusCode, 400)
  t.equal((await grant(0, 'alice-password')).statusCode, 400, 'locked: each replica saw two failures, together four')
  const admin = await redis.client()
  t.teardown(() => admin.close())
  const keys = (await admin.call('KEYS', 'gatehouse:login:*')) as string[]
  t.ok(keys.length > 0, 'the counters live in Redis')
})
