/**
 * Attack regressions for resource indicators (RFC 8707; DESIGN §10.3): a client getting a token
 * for a resource it was not allowed or not granted, widening on refresh or at code exchange,
 * smuggling another resource's scopes into a token, and a refused refresh spending the token
 * (the client's retry would then be taken for reuse). Each check here fails when its defence in
 * services/auth/src/tokens/resource-indicators.ts or the grants is removed.
 */
import t from 'tap'
import { parseAuthFileConfig } from '../../services/auth/src/directory/config-file.js'
import {
  authorize, claimsOf, codeFor, DASH, DASH_CLIENT, ELSEWHERE, exchange, postToken, REDIRECT_URI, REPORTS, RESOURCE, startResourceApp,
} from '../../services/auth/test/oidc/resource-fixture.js'
import { basic } from '../../services/auth/test/helpers.js'
import type { OidcApp } from '../../services/auth/test/oidc/harness.js'

const REPORTING = basic('reporting-service', 'reporting-secret')
const MALFORMED = ['reports', '/reports', 'api://reports#x', ' api://reports', 'api://reports ', 'api://rep orts', 'api://résumé', 'http://[::1', 'api://reports#']

async function passwordLogin(h: OidcApp, extra: Record<string, string | string[]> = {}) {
  return await postToken(h, { grant_type: 'password', username: 'alice', password: 'alice-password', ...extra })
}

/** Scopes owned by a resource other than the token's audience. */
function foreignScopes(jwt: string): string[] {
  const c = claimsOf(jwt)
  const owner: Record<string, string> = { 'documents:read': RESOURCE, 'documents:write': RESOURCE, 'internal:read': RESOURCE, 'reports:read': REPORTS, 'reports:write': REPORTS }
  return String(c.scope).split(' ').filter((s) => owner[s] !== undefined && owner[s] !== c.aud)
}

t.test('/authorize: a resource the client may not have is invalid_target, redirected, and grants nothing', async (t) => {
  const h = await startResourceApp()
  t.teardown(h.close)
  const cases: [string, Record<string, string | string[]>][] = [
    ['a resource nobody allowed it', { resource: ELSEWHERE }],
    ['one allowed and one not', { resource: [REPORTS, ELSEWHERE] }],
    ['one not allowed after one allowed (order does not matter)', { resource: [ELSEWHERE, RESOURCE] }],
    ...MALFORMED.map((r): [string, Record<string, string>] => [`malformed ${JSON.stringify(r.slice(0, 20))}`, { resource: r }]),
  ]
  for (const [name, extra] of cases) {
    const back = await authorize(h, extra)
    t.equal(back.origin + back.pathname, REDIRECT_URI, `${name}: back to the registered redirect URI`)
    t.equal(back.searchParams.get('error'), 'invalid_target', name)
    t.equal(back.searchParams.get('state'), 'state-1', `${name}: state echoed`)
    t.equal(back.searchParams.get('code'), null, `${name}: no code`)
  }
  // The client `web` has no resources: it may name only its audience.
  const web = new URL(authorizeLike(h, 'web', REPORTS))
  const res = await h.app.inject({ method: 'GET', url: web.pathname + web.search })
  t.equal(res.statusCode, 302)
  t.equal(new URL(res.headers.location as string).searchParams.get('error'), 'invalid_target', "another client's resource")
})

function authorizeLike(h: OidcApp, clientId: string, resource: string): string {
  const q = new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', resource })
  return `${h.issuer}/authorize?${q}`
}

t.test('/token, every grant: a resource the client is not allowed, or two resources, is invalid_target and issues nothing', async (t) => {
  const h = await startResourceApp()
  t.teardown(h.close)
  const refreshToken = (await passwordLogin(h)).json().refresh_token as string
  const asks: [string, Record<string, string | string[]>][] = [
    ['not allowed', { resource: ELSEWHERE }],
    ['two distinct resources', { resource: [RESOURCE, REPORTS] }],
    ...MALFORMED.slice(0, 4).map((r): [string, Record<string, string>] => [`malformed ${JSON.stringify(r)}`, { resource: r }]),
  ]
  for (const [name, extra] of asks) {
    const code = await codeFor(h, [RESOURCE, REPORTS])
    const grants: [string, () => ReturnType<typeof postToken>][] = [
      ['password', () => passwordLogin(h, extra)],
      ['client_credentials', () => postToken(h, { grant_type: 'client_credentials', ...extra })],
      ['authorization_code', () => exchange(h, code, extra)],
      ['refresh_token', () => postToken(h, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra })],
    ]
    for (const [grant, send] of grants) {
      const r = await send()
      t.equal(r.statusCode, 400, `${grant}, ${name}`)
      t.equal(r.json().error, 'invalid_target', `${grant}, ${name}`)
      t.notOk('access_token' in r.json())
    }
    if (name === 'two distinct resources') t.match((await passwordLogin(h, extra)).json(), { error_description: 'one resource per access token' })
    // Checked before the code is consumed and before the refresh token is rotated: both still work.
    t.equal((await exchange(h, code)).statusCode, 200, `${name}: the code was not spent`)
  }
  const still = await postToken(h, { grant_type: 'refresh_token', refresh_token: refreshToken })
  t.equal(still.statusCode, 200, 'the refresh token was never spent by a refused request')
  // A client without `resources` (audience api://resource) asking for another resource.
  const other = await postToken(h, { grant_type: 'client_credentials', scope: 'internal:read', resource: REPORTS }, REPORTING)
  t.equal(other.json().error, 'invalid_target', 'a client without resources: only its audience')
})

t.test('code exchange: a resource outside the code\'s granted set is invalid_target (the code is spent, RFC 6749 §4.1.2)', async (t) => {
  const h = await startResourceApp()
  t.teardown(h.close)
  const code = await codeFor(h, [RESOURCE])
  const wider = await exchange(h, code, { resource: REPORTS })
  t.equal(wider.statusCode, 400)
  t.equal(wider.json().error, 'invalid_target')
  t.equal((await exchange(h, code)).json().error, 'invalid_grant', 'spent by its first presentation, as any failed exchange')
  const defaultOnly = await codeFor(h)
  t.equal((await exchange(h, defaultOnly, { resource: REPORTS })).json().error, 'invalid_target', 'no resource at /authorize grants only the default')
})

t.test('refresh: a resource outside the family\'s set is invalid_target and spends nothing; the same token rotates afterwards', async (t) => {
  const h = await startResourceApp()
  t.teardown(h.close)
  const first = (await exchange(h, await codeFor(h, [RESOURCE]))).json()
  const rt = first.refresh_token as string
  for (const resource of [REPORTS, ELSEWHERE]) {
    const r = await postToken(h, { grant_type: 'refresh_token', refresh_token: rt, resource })
    t.equal(r.statusCode, 400, resource)
    t.equal(r.json().error, 'invalid_target', resource)
  }
  const found = await h.deps.families.lookup(rt)
  t.equal(found?.current, true, 'still the current token: nothing rotated')
  const next = await postToken(h, { grant_type: 'refresh_token', refresh_token: rt })
  t.equal(next.statusCode, 200, 'the refused requests spent nothing')
  t.equal(claimsOf(next.json().access_token).aud, RESOURCE)
  t.equal(h.logs.events('refresh_token.reuse_detected').length, 0, 'no reuse was detected')
  // Narrowing to one resource does not shrink the family: the next refresh may pick another.
  const pw = (await passwordLogin(h, { resource: REPORTS })).json()
  const back = await postToken(h, { grant_type: 'refresh_token', refresh_token: pw.refresh_token, resource: RESOURCE })
  t.equal(claimsOf(back.json().access_token).aud, RESOURCE)
})

t.test("another client presenting a family's refresh token learns nothing from resource: invalid_grant, and nothing is spent", async (t) => {
  const h = await startResourceApp({ clients: [{ ...DASH_CLIENT, client_id: 'dash2', client_secret: 'dash2-secret' }] })
  t.teardown(h.close)
  const rt = (await exchange(h, await codeFor(h, [RESOURCE]))).json().refresh_token as string
  for (const extra of [{ resource: REPORTS }, { resource: REPORTS, scope: 'openid reports:write' }] as Record<string, string>[]) {
    const r = await postToken(h, { grant_type: 'refresh_token', refresh_token: rt, ...extra }, basic('dash2', 'dash2-secret'))
    t.equal(r.json().error, 'invalid_grant', `${JSON.stringify(extra)}: as for any other client's token, not invalid_target or invalid_scope`)
  }
  t.equal((await postToken(h, { grant_type: 'refresh_token', refresh_token: rt })).statusCode, 200, 'its own client still rotates it')
})

t.test("scopes of another resource never appear in a token, whatever the grant and the resource", async (t) => {
  const h = await startResourceApp()
  t.teardown(h.close)
  const refreshToken = (await passwordLogin(h)).json().refresh_token as string
  let rt = refreshToken
  for (const resource of [RESOURCE, REPORTS, undefined]) {
    const extra: Record<string, string> = resource === undefined ? {} : { resource }
    const issued = [
      await passwordLogin(h, extra),
      await postToken(h, { grant_type: 'client_credentials', scope: 'documents:read reports:read', ...extra }),
      await exchange(h, await codeFor(h, [RESOURCE, REPORTS]), extra),
      await postToken(h, { grant_type: 'refresh_token', refresh_token: rt, ...extra }),
      await postToken(h, { grant_type: 'refresh_token', refresh_token: (await passwordLogin(h)).json().refresh_token, scope: 'documents:read reports:read', ...extra }),
    ]
    for (const [i, r] of issued.entries()) {
      t.equal(r.statusCode, 200, r.body)
      const body = r.json()
      t.same(foreignScopes(body.access_token), [], `grant ${i}, resource ${resource ?? '(none)'}: no foreign scope`)
      t.equal(body.scope, claimsOf(body.access_token).scope, 'the response says the token\'s scope')
      t.ok(String(body.scope).length > 0)
    }
    rt = issued[3]!.json().refresh_token
  }
})

t.test('a client that lost a resource: no token for it, even from a family granted it before', async (t) => {
  const h = await startResourceApp()
  t.teardown(h.close)
  const before = (await passwordLogin(h)).json()
  t.same((await h.deps.families.get(claimsOf(before.access_token).sid as string))?.resources, [RESOURCE, REPORTS])
  const reRegister = async (changes: Record<string, unknown>) => {
    await h.deps.clients.delete('dash')
    const { config, problems } = parseAuthFileConfig({ clients: [{ ...DASH_CLIENT, ...changes }] }, 'test')
    t.same(problems, [])
    await h.deps.clients.add(config.clients[0]!)
  }
  await reRegister({ resources: [] })
  const refused = await postToken(h, { grant_type: 'refresh_token', refresh_token: before.refresh_token, resource: REPORTS })
  t.equal(refused.json().error, 'invalid_target')
  const ok = await postToken(h, { grant_type: 'refresh_token', refresh_token: before.refresh_token })
  t.equal(ok.statusCode, 200, 'the refusal spent nothing')
  t.equal(claimsOf(ok.json().access_token).aud, RESOURCE)

  const granted = (await exchange(h, await codeFor(h))).json()
  t.equal(claimsOf(granted.access_token).aud, RESOURCE)
  // Allowed other resources now, none of those the family was granted: the family is dead.
  await reRegister({ audience: 'api://moved', resources: ['api://moved-too'] })
  const dead = await postToken(h, { grant_type: 'refresh_token', refresh_token: granted.refresh_token })
  t.equal(dead.json().error, 'invalid_grant', 'no granted resource is allowed any more')
  t.match(h.logs.events('family.revoked'), [{ family_id: claimsOf(granted.access_token).sid, reason: 'admin' }], 'and it is revoked, not left to look like reuse')
})

t.test('/introspect: an access token is active only to a caller allowed its audience (its audience or resources) or to its own client', async (t) => {
  // A service of its own whose tokens are for api://reports only.
  const reportsService = { client_id: 'reports-job', client_secret: 'reports-job-secret', grant_types: ['client_credentials'], scope: 'reports:read', audience: REPORTS }
  const h = await startResourceApp({ clients: [reportsService] })
  t.teardown(h.close)
  const job = await postToken(h, { grant_type: 'client_credentials' }, basic('reports-job', 'reports-job-secret'))
  t.equal(claimsOf(job.json().access_token).aud, REPORTS)
  const introspect = async (auth: string) =>
    (await h.app.inject({ method: 'POST', url: '/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth }, payload: `token=${job.json().access_token}` })).json()
  t.match(await introspect(DASH), { active: true, aud: REPORTS, client_id: 'reports-job' }, 'dash is allowed api://reports (resources)')
  t.same(await introspect(basic('web', 'web-secret')), { active: false }, 'web (audience api://resource only) learns nothing')
  t.same(await introspect(REPORTING), { active: false }, 'reporting-service neither')
})
