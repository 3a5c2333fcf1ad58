/**
 * Attack regressions against token exchange (RFC 8693, DESIGN §10.4; issue 15): a client that
 * holds some token tries to turn it into a token for a service it may not reach, to pass a
 * refresh or ID token off as an access token, to claim to act with an actor token it forged or
 * took from another client, to keep using a revoked subject, or to widen the scope. Each case
 * fails when its defence (services/auth/src/exchange/token-exchange.ts, grants/token-exchange.ts,
 * the /token route's grant check) is removed.
 */
import { generateKeyPairSync } from 'node:crypto'
import t, { type Test } from 'tap'
import { SignJWT } from 'jose'
import { claimsOf, form, FORM, postForm, startOidcApp, basic, type OidcApp } from './auth-fixture.js'

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
const AT = 'urn:ietf:params:oauth:token-type:access_token'
const GATEWAY = basic('gateway', 'gateway-secret')
const OTHER = basic('other-gateway', 'other-secret')

const clients = [
  { client_id: 'gateway', client_secret: 'gateway-secret', grant_types: [GRANT, 'client_credentials'], scope: 'internal:read', audience: 'api://resource', token_exchange: { audiences: ['api://reports'] } },
  { client_id: 'outsider', client_secret: 'outsider-secret', grant_types: [GRANT], scope: 'reports:read', audience: 'api://reports', token_exchange: { audiences: ['api://reports'] } },
  { client_id: 'other-gateway', client_secret: 'other-secret', grant_types: [GRANT, 'client_credentials'], scope: 'internal:read', audience: 'api://resource', token_exchange: { audiences: ['api://reports'] } },
]

async function exchange(h: OidcApp, subject: string, extra: Record<string, string> = {}, auth: string | null = GATEWAY) {
  return await postForm(h, '/token', { grant_type: GRANT, subject_token: subject, subject_token_type: AT, audience: 'api://reports', ...extra }, auth)
}

async function login(h: OidcApp, scope = 'openid documents:read reports:read') {
  const res = await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope })
  t.equal(res.statusCode, 200, 'alice signs in')
  return res.json() as { access_token: string; refresh_token: string; id_token: string }
}

function refused(t: Test, res: { statusCode: number; json(): { error: string } }, error: string, what: string): void {
  t.equal(res.statusCode, 400, `${what}: 400`)
  t.equal(res.json().error, error, `${what}: ${error}`)
}

t.test('token exchange: every attack is refused with the RFC 8693 §2.2.2 error', async (t) => {
  const h = await startOidcApp({ clients })
  t.teardown(h.close)
  const user = await login(h)
  t.equal((await exchange(h, user.access_token)).statusCode, 200, 'the honest exchange works (so each refusal below is the defence, not a broken set-up)')

  // A token issued for another service: only the service it was meant for may exchange it (a
  // client that got hold of someone's token, or of a DPoP-bound one without its key).
  refused(t, await exchange(h, user.access_token, {}, basic('outsider', 'outsider-secret')), 'invalid_request', "a subject token for another client's audience")

  // A target outside the client's token_exchange.audiences, even one that exists.
  refused(t, await exchange(h, user.access_token, { audience: 'api://resource' }), 'invalid_target', 'an audience not allowed')
  refused(t, await exchange(h, user.access_token, { audience: '', resource: 'api://resource' }), 'invalid_target', 'a resource not allowed')
  refused(t, await exchange(h, user.access_token, { resource: 'api://resource' }), 'invalid_target', 'resource and audience disagreeing (the allowed one as audience)')
  refused(t, await exchange(h, user.access_token, { audience: 'api://resource', resource: 'api://reports' }), 'invalid_target', 'resource and audience disagreeing (the allowed one as resource)')

  // Other kinds of token passed off as access tokens, whatever type they claim.
  refused(t, await exchange(h, user.refresh_token), 'invalid_request', 'a refresh token as the subject')
  refused(t, await exchange(h, user.refresh_token, { subject_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), 'invalid_request', 'a refresh token with its own type')
  refused(t, await exchange(h, user.id_token), 'invalid_request', 'an ID token as the subject')
  refused(t, await exchange(h, user.id_token, { subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }), 'invalid_request', 'an ID token with its own type')

  // A token that says the right things but is signed by another key.
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const forge = async (claims: Record<string, unknown>) =>
    await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: h.deps.keys.current().active.kid }).sign(attacker.privateKey)
  const own = (await postForm(h, '/token', { grant_type: 'client_credentials' }, GATEWAY)).json().access_token as string
  refused(t, await exchange(h, await forge(claimsOf(user.access_token))), 'invalid_request', 'a forged subject token')
  refused(t, await exchange(h, user.access_token, { actor_token: await forge(claimsOf(own)), actor_token_type: AT }), 'invalid_request', 'a forged actor token (another key)')

  // Another client's token is no proof of who calls.
  const foreign = (await postForm(h, '/token', { grant_type: 'client_credentials' }, OTHER)).json().access_token as string
  refused(t, await exchange(h, user.access_token, { actor_token: foreign, actor_token_type: AT }), 'invalid_request', "another client's token as the actor")
  refused(t, await exchange(h, user.access_token, { actor_token: user.access_token, actor_token_type: AT }), 'invalid_request', "the user's own token (issued to cli) as the actor")
  t.equal((await exchange(h, user.access_token, { actor_token: own, actor_token_type: AT })).statusCode, 200, "the caller's own token is accepted")

  // A service token has no user and no revocable family to stand for.
  refused(t, await exchange(h, own), 'invalid_request', 'a client_credentials token as the subject')

  // Wider than the subject: reports:read is the target's, but this subject never had it.
  const narrow = await login(h, 'openid documents:read')
  refused(t, await exchange(h, narrow.access_token, { scope: 'reports:read' }), 'invalid_scope', "a scope wider than the subject token's")
  refused(t, await exchange(h, narrow.access_token), 'invalid_scope', 'no scope of the target in the subject')
  refused(t, await exchange(h, user.access_token, { scope: 'reports:read documents:read' }), 'invalid_scope', "a subject scope that is not the target's")
  refused(t, await exchange(h, user.access_token, { scope: 'openid reports:read' }), 'invalid_scope', 'openid (no resource) is not carried')

  // A client without the grant; a public client even if a record gives it the grant.
  refused(t, await exchange(h, user.access_token, {}, basic('reporting-service', 'reporting-secret')), 'unauthorized_client', 'a client without the grant')
  await h.deps.clients.add({
    client_id: 'public-exchanger',
    token_endpoint_auth_method: 'none',
    grant_types: [GRANT],
    scope: '',
    audience: 'api://resource',
    redirect_uris: [],
    post_logout_redirect_uris: [],
    jwks: null,
    token_exchange: { audiences: ['api://reports'] },
  })
  refused(t, await exchange(h, user.access_token, { client_id: 'public-exchanger' }, null), 'unauthorized_client', 'a public client')
  t.equal(h.logs.events('token.exchanged').length, 2, 'only the two honest exchanges were made')
})

t.test('token exchange: an expired or revoked subject or actor is invalid_request', async (t) => {
  const h = await startOidcApp({ clients })
  t.teardown(h.close)
  const user = await login(h)
  const exchanged = (await exchange(h, user.access_token)).json().access_token as string
  const own = (await postForm(h, '/token', { grant_type: 'client_credentials' }, GATEWAY)).json().access_token as string

  // Revoking the user's family (RFC 7009 with the refresh token) ends the subject and everything exchanged from it.
  t.equal((await postForm(h, '/revoke', { token: user.refresh_token })).statusCode, 200)
  refused(t, await exchange(h, user.access_token), 'invalid_request', 'a revoked subject token')
  refused(t, await exchange(h, exchanged), 'invalid_request', 'a token exchanged from a revoked one, exchanged again')
  t.ok(h.published().some((p) => p.sid === claimsOf(exchanged).sid), 'the revocation feed names the sid the exchanged token carries')

  const fresh = await login(h)
  t.equal((await exchange(h, fresh.access_token, { actor_token: own, actor_token_type: AT })).statusCode, 200)
  h.clock.advance(901_000)
  refused(t, await exchange(h, fresh.access_token), 'invalid_request', 'an expired subject token')
  const later = await login(h)
  refused(t, await exchange(h, later.access_token, { actor_token: own, actor_token_type: AT }), 'invalid_request', 'an expired actor token')
})

t.test("token exchange: the acting service cannot end the user's sign-in by revoking its exchanged token", async (t) => {
  const h = await startOidcApp({ clients })
  t.teardown(h.close)
  const user = await login(h)
  const exchanged = (await exchange(h, user.access_token)).json().access_token as string
  t.equal((await postForm(h, '/revoke', { token: exchanged }, GATEWAY)).statusCode, 200, 'RFC 7009 §2.2: 200 whatever happened')
  t.equal(h.published().length, 0, 'no family was revoked')
  const refreshed = await postForm(h, '/token', { grant_type: 'refresh_token', refresh_token: user.refresh_token })
  t.equal(refreshed.statusCode, 200, "the user's refresh token still works at her own client")
  t.equal((await exchange(h, refreshed.json().access_token)).statusCode, 200)
})

t.test('token exchange: no form trick gets around the checks', async (t) => {
  const h = await startOidcApp({ clients })
  t.teardown(h.close)
  const user = await login(h)
  // Two subject tokens (one honest, one not): RFC 6749 §3.2, never "the first one wins".
  const twice = await h.app.inject({
    method: 'POST',
    url: '/token',
    headers: { ...FORM, authorization: GATEWAY },
    payload: `${form({ grant_type: GRANT, subject_token: user.access_token, subject_token_type: AT, audience: 'api://reports' })}&subject_token=x`,
  })
  refused(t, twice, 'invalid_request', 'a repeated subject_token')
  const huge = await exchange(h, 'a'.repeat(20_000))
  t.equal(huge.statusCode, 400, 'an oversized subject token is refused by the schema')
})
