import t from 'tap'
import { basic, makeApp, passwordLogin, token } from './helpers.js'

t.test('secrets never reach the logs', async (t) => {
  const h = await makeApp({ LOG_LEVEL: 'trace' })
  t.teardown(h.close)
  const login = (await passwordLogin(h.app)).json()
  const rotated = (await token(h.app, { grant_type: 'refresh_token', refresh_token: login.refresh_token })).json()
  await token(h.app, { grant_type: 'password', username: 'alice', password: 'wrong-Pa55word' }, basic('cli', 'WrongSecret123'))
  await token(h.app, { grant_type: 'password', username: 'alice', password: 'alice-password', client_id: 'cli', client_secret: 'cli-secret' }, null)
  await h.app.inject({ method: 'GET', url: '/healthz', headers: { authorization: `Bearer ${login.access_token}`, cookie: 'gh_session=SeSsIoNcOoKiE' } })
  const text = h.logs.text
  t.ok(h.logs.lines.length > 5, 'something was logged')
  for (const secret of ['alice-password', 'wrong-Pa55word', 'cli-secret', 'WrongSecret123', login.access_token, login.refresh_token, rotated.refresh_token, rotated.access_token, 'SeSsIoNcOoKiE', Buffer.from('cli:cli-secret').toString('base64')]) {
    t.notOk(text.includes(secret), `log does not contain ${secret.slice(0, 12)}…`)
  }
  t.ok(h.logs.events('token.issued').every((e) => typeof e.jti === 'string'), 'identifiers are logged instead')
})
