/**
 * A login racing a password change (DESIGN §10.1: a password change ends every session of the
 * user). The login verified the old password; the change, and the ending of the user's sessions,
 * ran before the login started its session. Without a second look the session starts after
 * everything was ended and lives for 12 h on the old password.
 */
import t from 'tap'
import type { Admin } from '../../services/auth/src/index.js'
import { parseLoginForm } from '../../services/auth/test/oidc/harness.js'
import { adminOf, authorizeQuery, cookiesOf, form, FORM, type OidcApp, startOidcApp } from './auth-fixture.js'


for (const [verb, act] of [
  ['users set-password', (a: Admin) => a.setPassword('alice', 'a-brand-new-password')],
  ['users disable', (a: Admin) => a.disableUser('alice')],
] as const) {
  t.test(`a login whose password check preceded ${verb} starts no session`, async (t) => {
    const h = await startOidcApp()
    t.teardown(h.close)
    const page = await h.app.inject({ method: 'GET', url: `/authorize?${authorizeQuery()}` })
    const fields = parseLoginForm(page.body)
    // The change lands between the password check and the session's start (the KDF and the
    // login delay make this window real).
    const sessions = h.deps.sessions
    const start = sessions.start.bind(sessions)
    let raced = false
    sessions.start = async (input) => {
      if (!raced) {
        raced = true
        await act(adminOf(h))
      }
      return await start(input)
    }
    const res = await h.app.inject({ method: 'POST', url: '/login', headers: FORM, payload: form({ ...fields, username: 'alice', password: 'alice-password' }), cookies: cookiesOf(page) })
    t.ok(raced, 'the change ran inside the login')
    t.notOk(res.headers.location, 'no code for the old password')
    t.equal(res.statusCode, 400, 'the login page again')
    t.match(res.body, /name="password"/)
    const alice = await h.deps.users.findByUsername('alice')
    t.same(await h.deps.sessions.listByUser(alice!.id), [], 'no session outlives the change')
    t.equal(h.logs.events('login.superseded').length, 1, 'and says why')
  })
}
