import t from 'tap'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { startRedis } from '@gatehouse/test-harness'
import { Readable } from 'node:stream'
import { CliContext } from '../../src/cli/context.js'
import { logoutQueueKeys } from '../../src/store/key-names.js'
import { createRedis, waitForRedis } from '../../src/store/redis-connection.js'
import { cliRunner, liveService } from '../cli/harness.js'
import { makeApp } from '../helpers.js'
import { Receiver } from './receiver.js'

/**
 * The wiring: the runtime starts a worker (memory queue without Redis, Redis queue with it) and
 * `deps.backchannel` queues for it; `gatehouse clients add` registers the metadata. These wait
 * for the running worker's next poll (about a second, bounded by Receiver.received).
 */
async function verify(app: { inject: (o: { method: 'GET'; url: string }) => Promise<{ json<T>(): T }> }, body: string, issuer: string, clientId: string) {
  const jwks = createLocalJWKSet((await app.inject({ method: 'GET', url: '/jwks.json' })).json<JSONWebKeySet>())
  const token = new URLSearchParams(body).get('logout_token')!
  return (await jwtVerify(token, jwks, { issuer, audience: clientId, typ: 'logout+jwt', algorithms: ['RS256'] })).payload
}

t.test('without Redis: deps.backchannel queues, the runtime worker delivers', async (t) => {
  const receiver = await Receiver.start()
  t.teardown(() => receiver.close())
  // The real clock: the token's iat and exp are checked by jose against now.
  const env = await makeApp()
  t.teardown(() => env.close())
  env.clock.ms = Date.now()
  await env.deps.clients.add({ client_id: 'rp', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], scope: 'openid', audience: 'api', redirect_uris: ['https://rp/cb'], post_logout_redirect_uris: [], jwks: null, backchannel_logout_uri: receiver.url })
  await env.deps.backchannel.sessionEnded({ sid: 'sid-mem', sub: 'u_1', clientIds: ['rp'] })
  const [r] = await receiver.received(1)
  t.match(await verify(env.app, r!.body, env.config.issuer, 'rp'), { sid: 'sid-mem', sub: 'u_1', aud: 'rp' })
  const metrics = await env.deps.metrics.registry.getSingleMetricAsString('gatehouse_backchannel_logout_total')
  t.match(metrics, /gatehouse_backchannel_logout_total\{outcome="delivered"\} 1/)
})

t.test('with Redis: a client added by the CLI, a job queued by another process, delivered by the service', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const receiver = await Receiver.start()
  t.teardown(() => receiver.close())
  const ENV = { REDIS_URL: server.url }
  const live = await liveService(t, ENV)
  const cli = cliRunner(ENV)

  const bad = await cli(['clients', 'add', 'rp-bad', '--auth-method', 'none', '--grant-type', 'authorization_code', '--redirect-uri', 'https://rp/cb', '--backchannel-logout-uri', 'http://rp.example/logout'])
  t.not(bad.code, 0)
  t.match(bad.stderr, /backchannel_logout_uri must be https/)

  const added = await cli(['clients', 'add', 'rp', '--auth-method', 'none', '--grant-type', 'authorization_code', '--scope', 'openid', '--redirect-uri', 'https://rp/cb', '--backchannel-logout-uri', receiver.url, '--backchannel-logout-session-required', '--json'])
  t.equal(added.code, 0, added.stderr)
  t.match(added.json().client, { backchannel_logout_uri: receiver.url, backchannel_logout_session_required: true })

  // The CLI's back-channel (the one its Admin is given) only enqueues, on its own connection.
  let stderr = ''
  const ctx = new CliContext({ stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) }, stdin: Readable.from([]), env: { ...ENV, GATEHOUSE_ACTOR: 'op' } })
  t.teardown(() => ctx.close())
  await (await ctx.backchannel()).sessionEnded({ sid: 'sid-cli', sub: 'u_2', clientIds: ['rp', 'nobody'] })
  t.match(stderr, /"event":"backchannel_logout.queued"/, 'an audit line on stderr')
  const redis = createRedis({ url: server.url })
  t.teardown(() => redis.disconnect())
  await waitForRedis(redis)

  await live.deps.backchannel.sessionEnded({ sid: 'sid-svc', sub: 'u_3', clientIds: ['rp'] })
  const requests = await receiver.received(2)
  const sids = await Promise.all(requests.map(async (r) => (await verify(live.app, r.body, live.deps.config.issuer, 'rp')).sid))
  t.same(sids.sort(), ['sid-cli', 'sid-svc'])
  t.equal(await redis.hlen(logoutQueueKeys().jobs), 0, 'both left the Redis queue')
})
