/** `gatehouse clients add` registers a device client (its --help example), which can start the flow at once. */
import t from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { form } from '../helpers.js'
import { cliRunner, liveService } from '../cli/harness.js'

const server = await startRedis()
t.teardown(() => server.stop())
const ENV = { REDIS_URL: server.url }
const cli = cliRunner(ENV)

t.test('clients add: a public client with the device grant', async (t) => {
  const added = await cli(['clients', 'add', 'tv-app', '--auth-method', 'none', '--grant-type', 'urn:ietf:params:oauth:grant-type:device_code', '--grant-type', 'refresh_token', '--scope', 'openid profile', '--json'])
  t.equal(added.code, 0, added.stderr)
  t.match(added.json().client, { has_secret: false })
  const { app } = await liveService(t, ENV)
  const res = await app.inject({ method: 'POST', url: '/device_authorization', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form({ client_id: 'tv-app', scope: 'openid' }) })
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json().user_code, /^[A-Z]{4}-[A-Z]{4}$/)
})
