import t from 'tap'
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose'
import {
  AUDIENCE,
  ManualClock,
  basicAuth,
  connectResp,
  eventually,
  getJson,
  monitorRedis,
  parseInfo,
  postForm,
  startFakeIssuer,
  startRedis,
} from '../src/index.js'

t.test('ManualClock: moves only when told; following() runs with its base', async (t) => {
  const clock = new ManualClock(1_000_000)
  t.equal(clock.now(), 1_000_000)
  t.equal(clock.advance(500), 1_000_500)
  t.equal(clock.advanceSeconds(2), 1_002_500)
  t.equal(clock.seconds(), 1002)
  clock.set(5_000)
  t.equal(clock.ms, 5_000)
  clock.ms += 1
  t.equal(clock.now(), 5_001)
  t.equal(new ManualClock().now(), Date.UTC(2026, 0, 1), 'the default start')

  let base = 10_000
  const following = ManualClock.following(() => base)
  t.equal(following.now(), 10_000)
  base += 300
  t.equal(following.now(), 10_300, 'runs with its base')
  following.advanceSeconds(60)
  base += 1
  t.equal(following.now(), 70_301, 'and stays ahead of it')
})

t.test('redis: raw replies, errors, subscribe, MONITOR; a stopped server fails fast', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const c = await redis.client()
  t.teardown(() => c.close())
  t.equal(await c.call('PING'), 'PONG')
  t.equal(await c.call('HSET', 'h', 'a', '1', 'b', '2'), 2)
  t.same(await c.call('hgetall', 'h'), ['a', '1', 'b', '2'], 'the reply as the server sent it (no ioredis transformer)')
  t.equal(await c.call('GET', 'missing'), null)
  await t.rejects(c.call('INCR', 'h'), /WRONGTYPE/, 'an error reply rejects')
  t.match(parseInfo(await c.call('INFO', 'server')), { tcp_port: String(redis.port) })

  const monitor = await monitorRedis(redis.port)
  t.teardown(() => monitor.close())
  await c.call('SET', 'k', 'v "quoted"')
  const seen = await monitor.waitFor((m) => m.args[0] === 'set')
  t.same(seen.args, ['set', 'k', 'v "quoted"'])
  t.match(seen.source, /^127\.0\.0\.1:\d+$/)

  const sub = await connectResp(redis.port)
  t.teardown(() => sub.close())
  t.same(await sub.call('SUBSCRIBE', 'ch'), 1, 'a subscription is acknowledged')
  t.equal(await c.call('PUBLISH', 'ch', 'hello'), 1, 'and counts as a receiver')

  await redis.stop()
  await t.rejects(c.call('PING'), 'a closed connection fails at once, without reconnecting')
  await t.rejects(connectResp(redis.port, { timeoutMs: 1000 }), 'nothing to connect to')
})

t.test('fake issuer: discovery, JWKS with ETag and failures, signed tokens, client_credentials', async (t) => {
  const issuer = await startFakeIssuer({ clock: () => 1_700_000_000_000 })
  t.teardown(() => issuer.close())
  t.same((await getJson(`${issuer.issuer}/.well-known/openid-configuration`)).body, { issuer: issuer.issuer, jwks_uri: issuer.jwksUri, token_endpoint: issuer.tokenEndpoint })

  const jwks = await fetch(issuer.jwksUri)
  t.equal(jwks.headers.get('cache-control'), 'public, max-age=300')
  const set = (await jwks.json()) as { keys: Record<string, unknown>[] }
  t.equal(set.keys.length, 1)
  t.notOk('d' in set.keys[0]!, 'no private member')
  const again = await fetch(issuer.jwksUri, { headers: { 'if-none-match': jwks.headers.get('etag')! } })
  t.equal(again.status, 304)
  t.same(issuer.counts, { discovery: 1, jwks: 2, notModified: 1, token: 0 })
  issuer.failWith = 503
  t.equal((await fetch(issuer.jwksUri)).status, 503)
  issuer.failWith = undefined

  const keys = createLocalJWKSet(set as never)
  const user = await jwtVerify(issuer.userToken({ roles: undefined }), keys, { issuer: issuer.issuer, audience: AUDIENCE, typ: 'at+jwt', currentDate: new Date(1_700_000_000_000) })
  t.match(user.payload, { sub: 'user-alice', iat: 1_700_000_000, exp: 1_700_000_900, scope: 'openid documents:read documents:write' })
  t.notOk('roles' in user.payload, 'undefined removes a claim')
  t.notOk('sid' in decodeJwt(issuer.serviceToken()), 'a service token carries no user claims')

  issuer.clients.set('reports', { secret: 's3cret', scope: 'internal:read' })
  const refused = await postForm(issuer.tokenEndpoint, { grant_type: 'client_credentials' }, basicAuth('reports', 'wrong'))
  t.equal(refused.status, 401)
  t.equal(refused.body.error, 'invalid_client')
  const granted = await postForm(issuer.tokenEndpoint, { grant_type: 'client_credentials', scope: 'internal:read documents:read' }, basicAuth('reports', 's3cret'))
  t.equal(granted.status, 200)
  t.match(decodeJwt(granted.body.access_token!), { sub: 'reports', client_id: 'reports', scope: 'internal:read' })

  let release!: () => void
  issuer.holdJwks = new Promise<void>((resolve) => (release = resolve))
  let told = false
  issuer.onJwks = () => (told = true)
  const held = fetch(issuer.jwksUri)
  await eventually('the held request to arrive', async () => told, (v) => v, 2000)
  release()
  t.equal((await held).status, 200, 'a held JWKS request is answered once released')
})
