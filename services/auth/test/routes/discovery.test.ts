import t from 'tap'
import { makeApp } from '../helpers.js'

t.test('discovery names every endpoint', async (t) => {
  const h = await makeApp({ ISSUER: 'https://id.example.com/' })
  t.teardown(h.close)
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    const res = await h.app.inject({ method: 'GET', url: path })
    t.equal(res.statusCode, 200)
    const doc = res.json()
    t.equal(doc.issuer, 'https://id.example.com', 'no trailing slash')
    t.equal(doc.token_endpoint, 'https://id.example.com/token')
    t.equal(doc.jwks_uri, 'https://id.example.com/jwks.json')
    t.equal(doc.authorization_endpoint, 'https://id.example.com/authorize')
    t.ok(doc.grant_types_supported.includes('password'))
    t.ok(doc.grant_types_supported.includes('refresh_token'))
    t.same(doc.code_challenge_methods_supported, ['S256'])
    t.ok(doc.scopes_supported.includes('documents:read'))
  }
})

t.test('JWKS publishes public members only, with caching headers', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const res = await h.app.inject({ method: 'GET', url: '/jwks.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['cache-control'], /^public, max-age=\d+$/)
  t.match(res.headers.etag, /^"[\w-]+"$/)
  const { keys } = res.json()
  t.equal(keys.length, 1)
  t.same(Object.keys(keys[0]).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use'])
  for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) t.notOk(priv in keys[0], `no ${priv}`)
  const again = await h.app.inject({ method: 'GET', url: '/jwks.json', headers: { 'if-none-match': res.headers.etag as string } })
  t.equal(again.statusCode, 304)
})

t.test('health and readiness', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  t.equal((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  const ready = await h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json().checks, { keys: 'ok', store: 'ok', shutdown: 'ok' })
})
