/**
 * Credentials and TLS for Redis Cluster and Sentinel (REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS):
 * a URL carries its own (redis://user:pass@host, rediss://), a list of nodes cannot, and managed
 * Redis deployments require both. Checked at start like every variable, then end to end against a
 * password-protected Sentinel deployment.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startRedisSentinel } from '@gatehouse/test-harness'
import { buildApp } from '../../src/app.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { basic, createRuntimeWhenReachable, form } from '../helpers.js'

t.test('the variables are validated and reach the connection settings', async (t) => {
  const cluster = await loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:6379,10.0.0.2:6379', REDIS_USERNAME: 'gatehouse', REDIS_PASSWORD: 's3cret', REDIS_TLS: 'true' })
  t.match(cluster.redis, { clusterNodes: [{ host: '10.0.0.1', port: 6379 }, { host: '10.0.0.2', port: 6379 }], username: 'gatehouse', password: 's3cret', tls: true })
  const sentinel = await loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'gatehouse', REDIS_PASSWORD: 's3cret' })
  t.match(sentinel.redis, { sentinels: [{ host: 's1', port: 26379 }], sentinelName: 'gatehouse', password: 's3cret' })
  t.notOk(sentinel.redis?.tls, 'no TLS unless asked for')

  await t.rejects(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PASSWORD: 'x' }), { name: 'ConfigError', message: /REDIS_PASSWORD.*REDIS_URL/ }, 'a URL carries its own credentials')
  const err = await loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:6379', REDIS_TLS: 'yes' }).catch((e: unknown) => e)
  t.ok(err instanceof ConfigError)
  t.match((err as ConfigError).message, /REDIS_TLS must be one of true, false/)
})

t.test('a password-protected Sentinel deployment', async (t) => {
  const password = randomBytes(12).toString('hex')
  const sentinel = await startRedisSentinel({ password })
  t.teardown(() => sentinel.stop())
  const env = { REDIS_SENTINELS: sentinel.sentinelsEnv, REDIS_SENTINEL_NAME: sentinel.name, LOG_LEVEL: 'silent' }

  const config = await loadConfig({ ...env, REDIS_PASSWORD: password })
  const runtime = await createRuntimeWhenReachable(config)
  const app = await buildApp(runtime.deps, { logStream: false })
  t.teardown(async () => {
    await app.close()
    await runtime.close()
  })
  const post = (params: Record<string, string>) =>
    app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form(params) })
  const login = await post({ grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.statusCode, 200, 'with REDIS_PASSWORD: log in')
  const refreshed = await post({ grant_type: 'refresh_token', refresh_token: (login.json() as { refresh_token: string }).refresh_token })
  t.equal(refreshed.statusCode, 200, 'and refresh')

  // The same deployment without the password: the store refuses, the service does not start.
  const bare = await loadConfig(env)
  const attempt = createRuntime(bare, { warn() {}, info() {} })
  const outcome = await Promise.race([
    attempt.then(async (r) => {
      await r.close()
      return 'started'
    }, () => 'refused'),
    new Promise<string>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref()),
  ])
  t.equal(outcome, 'refused', 'without it the auth service refuses to start (bounded)')
})
