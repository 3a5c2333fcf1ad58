/**
 * Attack regressions against the auth service (issue 5), for what the tests beside the code do
 * not already cover (SECURITY.md maps every attack to its test). The auth service checks its own
 * access tokens at /userinfo and /introspect (the verifier's AccessTokenRulebook, run with our own key ring): forged, confused and
 * malformed tokens must fail there exactly as at a resource server. Then open-redirect variants
 * at /authorize and /logout, and CSRF across two pending logins.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createPublicKey, generateKeyPairSync, sign as rsaSign, type KeyObject } from 'node:crypto'
import t from 'tap'
import { exportJWK, SignJWT, type JWTPayload } from 'jose'
import { authorizeQuery, claimsOf, cookiesOf, CLI, FORM, form, postForm, REDIRECT_URI, startOidcApp, WEB, type OidcApp } from './auth-fixture.js'
import { parseLoginForm } from '../../services/auth/test/oidc/harness.js'

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

interface Forge {
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
  key?: KeyObject | Uint8Array
  alg?: string
}

/** A JWT with the given header and claims, signed by `key` (default: the auth service's own active key). */
async function sign(h: OidcApp, base: JWTPayload, f: Forge = {}): Promise<string> {
  const active = h.deps.keys.current().active
  const claims: Record<string, unknown> = { ...base, ...f.claims }
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k]
  const header: Record<string, unknown> = { alg: f.alg ?? 'RS256', typ: 'at+jwt', kid: active.kid, ...f.header }
  for (const [k, v] of Object.entries(header)) if (v === undefined) delete header[k]
  return await new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(f.key ?? active.privateKey)
}

/** RS256 by hand, for headers a JOSE library refuses to produce (an unknown `crit` extension). */
function rawRs256(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(claims)}`
  return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`
}

/** A tiny HTTP server that counts requests: a `jku`/`x5u` target that must never be fetched. */
async function trap(body: unknown): Promise<{ url: string; hits: () => number; server: Server }> {
  let hits = 0
  const server = createServer((_req, res) => {
    hits++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(body))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, hits: () => hits, server }
}

t.test("forged, confused and malformed tokens at the auth service's own token checks", async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const real = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid profile' })).json()
  const base = claimsOf(real.access_token) as JWTPayload
  const now = () => Math.floor(h.clock.now() / 1000)
  const active = h.deps.keys.current().active
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'attacker-key', alg: 'RS256', use: 'sig' }
  const jwksTrap = await trap({ keys: [attackerJwk] })
  t.teardown(() => new Promise<void>((resolve) => jwksTrap.server.close(() => resolve())))
  const publicPem = createPublicKey(active.privateKey).export({ format: 'pem', type: 'spki' }) as string
  const publicJwkJson = JSON.stringify(h.deps.keys.current().jwks.keys[0])

  const valid = await sign(h, base)
  const userinfo = async (token: string) => await h.app.inject({ method: 'GET', url: '/userinfo', headers: { authorization: `Bearer ${token}` } })
  t.equal((await userinfo(valid)).statusCode, 200, 'control: a token re-signed by our key with the real claims is accepted')
  t.equal((await userinfo(await sign(h, base, { claims: { exp: now() + 30 } }))).statusCode, 200, 'control: exp 30 s ahead is accepted')
  t.equal((await userinfo(await sign(h, base, { claims: { nbf: now() } }))).statusCode, 200, 'control: nbf = now is accepted')

  const [header, payload, signature] = valid.split('.') as [string, string, string]
  const attacks: Record<string, string | Promise<string>> = {
    'alg none, no signature': `${b64({ alg: 'none', typ: 'at+jwt', kid: active.kid })}.${payload}.`,
    'alg none, signature kept': `${b64({ alg: 'none', typ: 'at+jwt', kid: active.kid })}.${payload}.${signature}`,
    'alg "None"': `${b64({ alg: 'None', typ: 'at+jwt' })}.${payload}.`,
    'HS256 keyed with our RSA public key (PEM)': sign(h, base, { alg: 'HS256', key: new TextEncoder().encode(publicPem) }),
    'HS256 keyed with our public JWK': sign(h, base, { alg: 'HS256', key: new TextEncoder().encode(publicJwkJson) }),
    'PS256 by our own key (outside the allow-list)': sign(h, base, { alg: 'PS256' }),
    'RS256 by another key under our kid': sign(h, base, { key: attacker.privateKey }),
    'an unknown kid': sign(h, base, { key: attacker.privateKey, header: { kid: 'attacker-key' } }),
    'no kid, another key': sign(h, base, { key: attacker.privateKey, header: { kid: undefined } }),
    'jku to the attacker JWKS': sign(h, base, { key: attacker.privateKey, header: { kid: 'attacker-key', jku: jwksTrap.url } }),
    'jku, our kid': sign(h, base, { key: attacker.privateKey, header: { jku: jwksTrap.url } }),
    'x5u to the attacker': sign(h, base, { key: attacker.privateKey, header: { kid: 'attacker-key', x5u: jwksTrap.url } }),
    'embedded jwk of the attacker': sign(h, base, { key: attacker.privateKey, header: { kid: 'attacker-key', jwk: attackerJwk } }),
    'crit with an unknown extension (our key)': rawRs256({ alg: 'RS256', typ: 'at+jwt', kid: active.kid, crit: ['urn:example:ext'], 'urn:example:ext': true }, base, active.privateKey),
    'an ID token (typ JWT)': real.id_token,
    'a refresh token': real.refresh_token,
    'typ JWT (our key)': sign(h, base, { header: { typ: 'JWT' } }),
    'no typ (our key)': sign(h, base, { header: { typ: undefined } }),
    'another issuer (our key)': sign(h, base, { claims: { iss: 'https://evil.example' } }),
    'the issuer with a trailing slash': sign(h, base, { claims: { iss: `${h.issuer}/` } }),
    'exp = now: expired at the boundary': sign(h, base, { claims: { exp: now() } }),
    'exp one second ago': sign(h, base, { claims: { exp: now() - 1 } }),
    'no exp': sign(h, base, { claims: { exp: undefined } }),
    'nbf in 30 s': sign(h, base, { claims: { nbf: now() + 30 } }),
    'a tampered payload': `${header}.${b64({ ...base, scope: 'openid profile internal:read' })}.${signature}`,
    'truncated signature': valid.slice(0, -4),
    'no signature segment': `${header}.${payload}`,
    'padded segments': `${header}==.${payload}=.${signature}=`,
    'doubled token': `${valid}.${valid}`,
    'two tokens joined by a space': `${valid} ${valid}`,
    'standard base64 (+ and /)': `${header}.${payload}.${signature.replace(/-/g, '+').replace(/_/g, '/')}`,
    'a non-base64url character': `${header}.${payload}.${signature.slice(0, -1)}!`,
    'header not JSON': `${b64('not json')}.${payload}.${signature}`,
    'payload not JSON': `${header}.${b64('[1,2')}.${signature}`,
    '100 KB token': `${header}.${'A'.repeat(100_000)}.${signature}`,
    '100 KB of garbage': 'x'.repeat(100 * 1024),
  }
  for (const [name, pending] of Object.entries(attacks)) {
    const token = await pending
    const res = await userinfo(token)
    // A token that does not even fit RFC 6750's b64token syntax is a malformed request (400); every other is invalid_token.
    t.ok(res.statusCode === 401 || res.statusCode === 400, `/userinfo refuses ${name} (${res.statusCode})`)
    t.match(res.json().error, /^(invalid_token|invalid_request)$/, `${name}: ${res.json().error}`)
    const intro = await postForm(h, '/introspect', { token }, WEB)
    if (token.length > 64 * 1024) t.equal(intro.statusCode, 413, `/introspect: ${name} exceeds the body limit`)
    else t.same(intro.json(), { active: false }, `/introspect: ${name} is not active`)
  }
  t.equal(jwksTrap.hits(), 0, 'the jku/x5u targets were never fetched')
  t.equal((await userinfo(valid)).statusCode, 200, 'the real token still works afterwards')
})

t.test('open redirects: /authorize never sends the browser anywhere but a registered URI', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const variants = [
    'javascript:alert(document.domain)//http://127.0.0.1:3000/callback',
    'data:text/html,<script>alert(1)</script>',
    '//evil.example/callback',
    'HTTP://127.0.0.1:3000/callback',
    'http://127.0.0.1:3000/Callback',
    `${REDIRECT_URI}/`,
    `${REDIRECT_URI}#`,
    `${REDIRECT_URI}%2F..%2F..%2Fevil`,
    'http://127.0.0.1:3000\\@evil.example/callback',
    'http://127.0.0.1:3001/callback',
    'https://127.0.0.1:3000/callback',
    `${REDIRECT_URI}\u0000`,
    ` ${REDIRECT_URI}`,
  ]
  for (const redirect of variants) {
    for (const method of ['GET', 'POST'] as const) {
      const q = authorizeQuery({ redirect_uri: redirect })
      const res = method === 'GET' ? await h.app.inject({ method, url: `/authorize?${q}` }) : await h.app.inject({ method, url: '/authorize', headers: FORM, payload: q })
      t.equal(res.statusCode, 400, `${method} ${JSON.stringify(redirect)}: refused`)
      t.notOk(res.headers.location, 'not redirected')
      t.match(res.headers['content-type'], /^text\/html/, 'a page for the user instead')
    }
  }
  // A registered URI with an error still goes back there, and only there (control).
  const control = await h.app.inject({ method: 'GET', url: `/authorize?${authorizeQuery({ response_type: 'token' })}` })
  t.equal(control.statusCode, 302)
  t.ok(String(control.headers.location).startsWith(`${REDIRECT_URI}?`))
})

t.test('open redirects: /logout redirects only to a URI registered for the identified client', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const idToken = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' }, CLI)).json().id_token as string
  const variants = ['javascript:alert(1)', '//evil.example/', 'HTTP://127.0.0.1:3000/', 'http://127.0.0.1:3000', 'http://127.0.0.1:3000/?x=1', 'http://127.0.0.1:3000/\\@evil.example', 'https://evil.example/']
  for (const uri of variants) {
    for (const query of [{ client_id: 'web' }, { id_token_hint: idToken }, {}] as Record<string, string>[]) {
      const res = await h.app.inject({ method: 'GET', url: `/logout?${new URLSearchParams({ ...query, post_logout_redirect_uri: uri })}` })
      t.notOk(res.headers.location, `${JSON.stringify(uri)} with ${Object.keys(query).join(',') || 'no client'}: not redirected (${res.statusCode})`)
      t.ok(res.statusCode === 200 || res.statusCode === 400, 'a page')
    }
  }
  const control = await h.app.inject({ method: 'GET', url: `/logout?${new URLSearchParams({ client_id: 'web', post_logout_redirect_uri: 'http://127.0.0.1:3000/' })}` })
  t.equal(control.headers.location, 'http://127.0.0.1:3000/', 'control: the registered URI')
})

t.test('CSRF: the token of one pending login does not validate another', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const a = await h.app.inject({ method: 'GET', url: `/authorize?${authorizeQuery()}` })
  const b = await h.app.inject({ method: 'GET', url: `/authorize?${authorizeQuery({ state: 'other' })}` })
  const fa = parseLoginForm(a.body)
  const fb = parseLoginForm(b.body)
  const cookies = { ...cookiesOf(a), ...cookiesOf(b) }
  const swapped = await h.app.inject({ method: 'POST', url: '/login', headers: FORM, payload: form({ interaction: fb.interaction, csrf: fa.csrf, username: 'alice', password: 'alice-password' }), cookies })
  t.equal(swapped.statusCode, 403, "A's CSRF token with B's pending login")
  t.notOk(swapped.cookies.some((c) => c.name === 'gh_session'), 'no session')
  const cookieFromA = await h.app.inject({ method: 'POST', url: '/login', headers: FORM, payload: form({ interaction: fb.interaction, csrf: fb.csrf, username: 'alice', password: 'alice-password' }), cookies: cookiesOf(a) })
  t.equal(cookieFromA.statusCode, 400, "B's form with only A's cookie")
  const ok = await h.app.inject({ method: 'POST', url: '/login', headers: FORM, payload: form({ interaction: fb.interaction, csrf: fb.csrf, username: 'alice', password: 'alice-password' }), cookies })
  t.equal(ok.statusCode, 303, 'control: the matching pair')
  t.equal(new URL(ok.headers.location as string).searchParams.get('state'), 'other')
})
