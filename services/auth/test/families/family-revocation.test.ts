/**
 * Every path that revokes a family announces it (DESIGN §6; issue 20), through the one step the
 * store takes: here the in-memory store, whose announcements go to the in-process publisher.
 * The Redis paths are proven by the family-store contract and test/faults/store-*.test.ts.
 */
import t from 'tap'
import { decodeJwt } from 'jose'
import { basic, form, makeApp, passwordLogin, token, type RecordingRevocationPublisher } from '../helpers.js'

function sids(h: { deps: { revocations: unknown } }): string[] {
  return (h.deps.revocations as RecordingRevocationPublisher).published.map((p) => p.sid)
}

t.test('reuse, a disabled user, and a revoke of an already revoked family are all announced', async (t) => {
  const h = await makeApp({ REFRESH_REUSE_GRACE: '0', ACCESS_TOKEN_TTL: '300' })
  t.teardown(h.close)

  // reuse
  const a = (await passwordLogin(h.app)).json()
  const aSid = decodeJwt(a.access_token).sid as string
  t.equal((await token(h.app, { grant_type: 'refresh_token', refresh_token: a.refresh_token })).statusCode, 200)
  h.clock.advanceSeconds(1)
  t.equal((await token(h.app, { grant_type: 'refresh_token', refresh_token: a.refresh_token })).statusCode, 400)
  const published = (h.deps.revocations as RecordingRevocationPublisher).published
  t.match(published.filter((p) => p.sid === aSid), [{ sid: aSid, exp: Math.floor(h.clock.now() / 1000) + 300 }], 'reuse: announced once, exp = now + ACCESS_TOKEN_TTL')
  t.equal(h.logs.events('family.revoked').filter((e) => e.family_id === aSid && e.reason === 'reuse').length, 1, 'the audit event')

  // a later /revoke of the revoked family announces it again (repair of a lost announcement)
  const revoke = await h.app.inject({ method: 'POST', url: '/revoke', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('cli', 'cli-secret') }, payload: form({ token: a.refresh_token }) })
  t.equal(revoke.statusCode, 200)
  t.equal(sids(h).filter((s) => s === aSid).length, 2, '/revoke announced it again')

  // a refresh by a user who has since been disabled revokes the family, and announces it
  const b = (await passwordLogin(h.app)).json()
  const bSid = decodeJwt(b.access_token).sid as string
  const alice = await h.deps.users.findByUsername('alice')
  await h.deps.users.setDisabled(alice!.id, true)
  const refused = await token(h.app, { grant_type: 'refresh_token', refresh_token: b.refresh_token })
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().error, 'invalid_grant')
  t.ok(sids(h).includes(bSid), 'disabled user: announced')
  t.equal(h.logs.events('family.revoked').filter((e) => e.family_id === bSid && e.reason === 'user_disabled').length, 1, 'the audit event')
})
