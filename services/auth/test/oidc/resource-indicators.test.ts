/**
 * Resource indicators (RFC 8707; DESIGN §10.3) through the auth app: `resource` at /authorize
 * (repeatable) grants a set, each token request picks one audience of it (a code exchange and a
 * refresh may narrow), and every token carries only its audience's scopes plus those no resource
 * owns. The refusals are in test/security/attacks-resource-indicators.test.ts.
 */
import t, { type Test } from 'tap'
import { startRedis } from '@gatehouse/test-harness'
import { CLI, claimsOf, codeFor, DASH, DASH_CLIENT, exchange, postToken, REPORTS, RESOURCE, startResourceApp, authorize } from './resource-fixture.js'
import type { OidcApp } from './harness.js'

const USER_SCOPES = 'openid profile email'

function flows(t: Test, env: () => Record<string, string>) {
  const start = async (t: Test): Promise<OidcApp> => {
    const h = await startResourceApp({ env: env() })
    t.teardown(h.close)
    return h
  }

  t.test('authorize with both resources; the code picks one, each refresh picks one (narrowing in turn)', async (t) => {
    const h = await start(t)
    const first = await exchange(h, await codeFor(h, [RESOURCE, REPORTS]), { resource: REPORTS })
    t.equal(first.statusCode, 200, first.body)
    const body = first.json()
    t.match(claimsOf(body.access_token), { aud: REPORTS, scope: `${USER_SCOPES} reports:read` })
    t.equal(body.scope, `${USER_SCOPES} reports:read`, 'the response scope is the token scope (RFC 6749 §5.1)')
    t.type(body.id_token, 'string', 'openid belongs to no resource: the ID token comes along')
    const family = await h.deps.families.get(claimsOf(body.access_token).sid as string)
    t.same(family?.resources, [RESOURCE, REPORTS], 'the family records the granted set')
    t.equal(family?.scope, DASH_CLIENT.scope, 'and the whole granted scope')

    const userinfo = await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: `Bearer ${body.access_token}` } })
    t.equal(userinfo.statusCode, 200, 'a token for api://reports still reaches /userinfo (openid)')

    let rt = body.refresh_token as string
    for (const [resource, aud, scope] of [
      [RESOURCE, RESOURCE, `${USER_SCOPES} documents:read`],
      [REPORTS, REPORTS, `${USER_SCOPES} reports:read`],
      [undefined, RESOURCE, `${USER_SCOPES} documents:read`],
    ] as const) {
      const r = await postToken(h, { grant_type: 'refresh_token', refresh_token: rt, ...(resource ? { resource } : {}) })
      t.equal(r.statusCode, 200, r.body)
      t.match(claimsOf(r.json().access_token), { aud, scope }, `refresh with resource ${resource ?? '(none)'}`)
      t.equal(r.json().scope, scope)
      rt = r.json().refresh_token
    }
    const narrower = await postToken(h, { grant_type: 'refresh_token', refresh_token: rt, resource: REPORTS, scope: 'openid reports:read documents:read' })
    t.equal(narrower.json().scope, 'openid reports:read', 'a narrowed scope is cut to the resource too')

    const introspected = await h.app.inject({ method: 'POST', url: '/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: DASH }, payload: `token=${narrower.json().access_token}` })
    t.match(introspected.json(), { active: true, aud: REPORTS, scope: 'openid reports:read' }, '/introspect answers the token\'s aud')
  })

  t.test('without resource the default audience; a code granted only api://reports gives api://reports', async (t) => {
    const h = await start(t)
    const plain = await exchange(h, await codeFor(h))
    t.match(claimsOf(plain.json().access_token), { aud: RESOURCE, scope: `${USER_SCOPES} documents:read` })
    t.same((await h.deps.families.get(claimsOf(plain.json().access_token).sid as string))?.resources, [RESOURCE], 'granted: the default only')

    const reportsOnly = await exchange(h, await codeFor(h, [REPORTS]))
    t.equal(reportsOnly.statusCode, 200, reportsOnly.body)
    t.match(claimsOf(reportsOnly.json().access_token), { aud: REPORTS }, 'the default is not granted: the first granted')
    const refreshed = await postToken(h, { grant_type: 'refresh_token', refresh_token: reportsOnly.json().refresh_token })
    t.match(claimsOf(refreshed.json().access_token), { aud: REPORTS }, 'and so on refresh')

    const same = await exchange(h, await codeFor(h, [REPORTS, REPORTS]), { resource: [REPORTS, REPORTS] })
    t.equal(same.statusCode, 200, 'the same resource repeated is one resource')
  })

  t.test('password and client_credentials: any resource the client is allowed; the password family gets them all', async (t) => {
    const h = await start(t)
    const pw = await postToken(h, { grant_type: 'password', username: 'alice', password: 'alice-password', resource: REPORTS })
    t.equal(pw.statusCode, 200, pw.body)
    t.match(claimsOf(pw.json().access_token), { aud: REPORTS, scope: `${USER_SCOPES} reports:read`, roles: ['admin'] })
    t.same((await h.deps.families.get(claimsOf(pw.json().access_token).sid as string))?.resources, [RESOURCE, REPORTS])
    const back = await postToken(h, { grant_type: 'refresh_token', refresh_token: pw.json().refresh_token, resource: RESOURCE })
    t.match(claimsOf(back.json().access_token), { aud: RESOURCE, scope: `${USER_SCOPES} documents:read` })

    const cc = await postToken(h, { grant_type: 'client_credentials', resource: REPORTS, scope: 'documents:read reports:read' })
    t.equal(cc.statusCode, 200, cc.body)
    t.match(cc.json(), { scope: 'reports:read' })
    t.match(claimsOf(cc.json().access_token), { aud: REPORTS, sub: 'dash', scope: 'reports:read' })
    const ccDefault = await postToken(h, { grant_type: 'client_credentials', scope: 'documents:read reports:read' })
    t.match(claimsOf(ccDefault.json().access_token), { aud: RESOURCE, scope: 'documents:read' })
  })

  t.test('a client without resources: its audience may be named, its tokens are as before', async (t) => {
    const h = await start(t)
    const asBefore = await postToken(h, { grant_type: 'password', username: 'alice', password: 'alice-password' }, CLI)
    const named = await postToken(h, { grant_type: 'password', username: 'alice', password: 'alice-password', resource: RESOURCE }, CLI)
    for (const r of [asBefore, named]) {
      t.equal(r.statusCode, 200, r.body)
      t.match(claimsOf(r.json().access_token), { aud: RESOURCE, scope: 'openid profile email documents:read documents:write' })
    }
  })

  t.test('a family from before resource indicators: the client\'s audience, and nothing else', async (t) => {
    const h = await start(t)
    const alice = await h.deps.users.findByUsername('alice')
    const { refreshToken } = await h.deps.families.create({ userId: alice!.id, clientId: 'dash', scope: DASH_CLIENT.scope, authTime: Math.floor(h.clock.now() / 1000) })
    const wider = await postToken(h, { grant_type: 'refresh_token', refresh_token: refreshToken, resource: REPORTS })
    t.equal(wider.json().error, 'invalid_target', 'it was never granted api://reports')
    const r = await postToken(h, { grant_type: 'refresh_token', refresh_token: refreshToken })
    t.equal(r.statusCode, 200, 'the refused request spent nothing')
    t.match(claimsOf(r.json().access_token), { aud: RESOURCE, scope: `${USER_SCOPES} documents:read` })
  })

  t.test('the repeated parameter rule still holds for every other /authorize parameter', async (t) => {
    const h = await start(t)
    const back = await authorize(h, { resource: [RESOURCE, REPORTS], nonce: ['a', 'b'] })
    t.equal(back.searchParams.get('error'), 'invalid_request')
  })
}

t.test('in-memory stores', async (t) => flows(t, () => ({})))

t.test('Redis stores', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  flows(t, () => ({ REDIS_URL: redis.url }))
})
