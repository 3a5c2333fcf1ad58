/**
 * The seed's story end to end, with real processes: a private redis-server,
 * the built auth service and the built resource service on free loopback
 * ports, driven over real HTTP (issue: foundation).
 */
import t from 'tap'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { eventually, getJson, postToken, startStack } from '@gatehouse/test-harness'

async function me(resource: string, accessToken: string) {
  const res = await getJson(`${resource}/me`, accessToken)
  return { status: res.status, www: res.headers.get('www-authenticate'), body: res.body }
}

t.test('password login, API call, expiry, refresh, reuse detection', async (t) => {
  const { issuer, auth, resource } = await startStack(t, {
    auth: { ACCESS_TOKEN_TTL: '2', REFRESH_REUSE_GRACE: '0' },
    resource: { CLOCK_TOLERANCE: '0' },
  })

  // any JOSE library can verify the token from discovery + JWKS
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string; issuer: string }
  t.equal(discovery.issuer, issuer)

  const login = await postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.status, 200)
  const { payload } = await jwtVerify(login.body.access_token!, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer, audience: 'api://resource', typ: 'at+jwt' })
  t.same(payload.roles, ['admin'])

  const ok = await me(resource.url, login.body.access_token!)
  t.equal(ok.status, 200)
  t.match(ok.body, { sub: payload.sub, roles: ['admin'], client_id: 'cli' })

  const docs = await fetch(`${resource.url}/documents`, { headers: { authorization: `Bearer ${login.body.access_token}` } })
  t.equal(docs.status, 200)

  const expired = await eventually('the access token to expire', () => me(resource.url, login.body.access_token!), (r) => r.status !== 200)
  t.equal(expired.status, 401)
  t.match(expired.www, /^Bearer realm="[^"]*", error="invalid_token"/)

  const refreshed = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token! })
  t.equal(refreshed.status, 200)
  t.not(refreshed.body.refresh_token, login.body.refresh_token)
  t.equal((await me(resource.url, refreshed.body.access_token!)).status, 200, 'carry on with the new token')

  // the spent token again (grace 0): reuse, the whole family is revoked
  const reuse = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token! })
  t.equal(reuse.status, 400)
  t.equal(reuse.body.error, 'invalid_grant')
  const current = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token! })
  t.equal(current.body.error, 'invalid_grant', 'the current refresh token is revoked too')

  // the revocation reaches the resource service before the access token expires
  const denied = await eventually('the revocation to reach the resource service', () => me(resource.url, refreshed.body.access_token!), (r) => r.status === 401, 1500)
  t.match(denied.www, /error="invalid_token"/)

  t.ok(auth.output.some((l) => l.includes('"event":"refresh_token.reuse_detected"')), 'reuse is logged')
  const metrics = await (await fetch(`${issuer}/metrics`)).text()
  t.match(metrics, /gatehouse_refresh_reuse_detected_total 1/)

  t.equal(await auth.stop(), 0, 'auth exits 0 on SIGTERM')
  t.equal(await resource.stop(), 0, 'resource exits 0 on SIGTERM')
})
