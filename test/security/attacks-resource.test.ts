/**
 * Attack regressions end to end (issue 5): tokens minted by the real auth service (listening on
 * 127.0.0.1), presented to the real resource service (@gatehouse/resource's buildApp, which
 * discovers the issuer's JWKS over HTTP). The verifier's unit tests check each rule against a
 * test issuer (packages/verifier/test/token-rules.test.ts); this suite checks that the deployed
 * pair agrees — that no token the auth service issues for another purpose, and no forgery built
 * from its published keys, opens the API.
 */
import { createPublicKey, generateKeyPairSync, sign as rsaSign, type KeyObject } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { exportJWK, SignJWT, type JWTPayload } from 'jose'
import { buildApp, loadConfig } from '../../services/resource/src/index.js'
import { dpopProof, makeDpopKey, type DpopProofInput } from '@gatehouse/test-harness'
import { claimsOf, postForm, startOidcApp, type OidcApp } from './auth-fixture.js'

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

function rawRs256(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(claims)}`
  return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`
}

async function sign(h: OidcApp, claims: Record<string, unknown>, f: { header?: Record<string, unknown>; key?: KeyObject | Uint8Array; alg?: string } = {}): Promise<string> {
  const active = h.deps.keys.current().active
  const c = { ...claims }
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k]
  const header: Record<string, unknown> = { alg: f.alg ?? 'RS256', typ: 'at+jwt', kid: active.kid, ...f.header }
  for (const [k, v] of Object.entries(header)) if (v === undefined) delete header[k]
  return await new SignJWT(c).setProtectedHeader(header as { alg: string }).sign(f.key ?? active.privateKey)
}

t.test('the resource service refuses every token that is not a valid access token for it', async (t) => {
  const h = await startOidcApp({ listen: true })
  t.teardown(h.close)
  let nowMs = Date.now()
  const logs: string[] = []
  const resource = buildApp(loadConfig({ ISSUER: h.issuer, AUDIENCE: 'api://resource', LOG_LEVEL: 'info' }), { clock: () => nowMs, logStream: { write: (l: string) => void logs.push(l) } })
  t.teardown(() => resource.close())
  await resource.ready()
  const me = async (token: string) => await resource.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })

  const real = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid profile documents:read' })).json()
  t.equal((await me(real.access_token)).statusCode, 200, 'control: the real access token')
  const base = claimsOf(real.access_token) as JWTPayload
  const nowS = () => Math.floor(nowMs / 1000)
  const fresh = (extra: Record<string, unknown> = {}) => ({ ...base, jti: `${Math.random()}`, iat: nowS(), exp: nowS() + 600, ...extra })
  t.equal((await me(await sign(h, fresh()))).statusCode, 200, 'control: re-signed by the auth key')

  const active = h.deps.keys.current().active
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'attacker', alg: 'RS256', use: 'sig' }
  const publicPem = createPublicKey(active.privateKey).export({ format: 'pem', type: 'spki' }) as string
  const jwksJson = await (await fetch(`${h.issuer}/jwks.json`)).text()
  const service = (await postForm(h, '/token', { grant_type: 'client_credentials' }, `Basic ${Buffer.from('reporting-service:reporting-secret').toString('base64')}`)).json()
  const [header, payload, signature] = real.access_token.split('.') as [string, string, string]

  const attacks: Record<string, string | Promise<string>> = {
    'the ID token': real.id_token,
    'the refresh token': real.refresh_token,
    'an ID token re-typed as at+jwt is still signed as an ID token': `${b64({ ...JSON.parse(Buffer.from(real.id_token.split('.')[0], 'base64url').toString()), typ: 'at+jwt' })}.${real.id_token.split('.')[1]}.${real.id_token.split('.')[2]}`,
    'alg none': `${b64({ alg: 'none', typ: 'at+jwt', kid: active.kid })}.${payload}.`,
    'HS256 keyed with the public key (PEM)': sign(h, fresh(), { alg: 'HS256', key: new TextEncoder().encode(publicPem) }),
    'HS256 keyed with the published JWKS': sign(h, fresh(), { alg: 'HS256', key: new TextEncoder().encode(jwksJson) }),
    'RS256 by another key with the real kid': sign(h, fresh(), { key: attacker.privateKey }),
    'an unknown kid': sign(h, fresh(), { key: attacker.privateKey, header: { kid: 'attacker' } }),
    'jku pointing at the attacker': sign(h, fresh(), { key: attacker.privateKey, header: { kid: 'attacker', jku: 'http://127.0.0.1:9/jwks.json' } }),
    'x5u pointing at the attacker': sign(h, fresh(), { key: attacker.privateKey, header: { kid: 'attacker', x5u: 'http://127.0.0.1:9/cert.pem' } }),
    'an embedded jwk': sign(h, fresh(), { key: attacker.privateKey, header: { kid: 'attacker', jwk: attackerJwk } }),
    'crit with an unknown extension (auth key)': rawRs256({ alg: 'RS256', typ: 'at+jwt', kid: active.kid, crit: ['urn:x'], 'urn:x': 1 }, fresh(), active.privateKey),
    'typ JWT (auth key)': sign(h, fresh(), { header: { typ: 'JWT' } }),
    'another issuer (auth key)': sign(h, fresh({ iss: 'https://evil.example' })),
    'another audience (auth key)': sign(h, fresh({ aud: 'api://other' })),
    'no audience (auth key)': sign(h, fresh({ aud: undefined })),
    'no exp (auth key)': sign(h, fresh({ exp: undefined })),
    'expired beyond the tolerance (31 s)': sign(h, fresh({ exp: nowS() - 31 })),
    'not yet valid beyond the tolerance (nbf +31 s)': sign(h, fresh({ nbf: nowS() + 31 })),
    'a tampered scope': `${header}.${b64({ ...base, scope: 'openid documents:write internal:read' })}.${signature}`,
    'truncated': real.access_token.slice(0, -3),
    'no signature': `${header}.${payload}.`,
    'two segments': `${header}.${payload}`,
    'padded segments': `${header}=.${payload}==.${signature}=`,
    'doubled': `${real.access_token}.${real.access_token}`,
    'standard base64': `${header}.${payload}.${signature.replace(/-/g, '+').replace(/_/g, '/')}`,
    'a non-base64url character': `${header}.${payload}.${signature.slice(0, -1)}*`,
    '100 KB': `${header}.${'A'.repeat(100 * 1024)}.${signature}`,
  }
  for (const [name, pending] of Object.entries(attacks)) {
    const res = await me(await pending)
    t.ok(res.statusCode === 401 || res.statusCode === 400, `${name}: refused (${res.statusCode})`)
    if (res.statusCode === 401) t.match(res.headers['www-authenticate'], /^Bearer realm="[^"]*", error="invalid_token"/, `${name}: RFC 6750 invalid_token`)
    else t.equal(res.json().error, 'invalid_request', `${name}: RFC 6750 invalid_request`)
  }
  // The tolerance boundary from the other side: within 30 s of skew, still accepted.
  t.equal((await me(await sign(h, fresh({ exp: nowS() - 29 })))).statusCode, 200, 'expired 29 s ago: within the tolerance')
  t.equal((await me(await sign(h, fresh({ nbf: nowS() + 29 })))).statusCode, 200, 'nbf in 29 s: within the tolerance')
  nowMs += 31_000
  t.equal((await me(real.access_token)).statusCode, 200, 'the real token, 31 s on: still valid (it lives 15 min)')

  // A service token is an access token too, but not a user's: /me refuses it by role, not by validity.
  t.equal((await me(service.access_token)).statusCode, 403, 'a client_credentials token at a user route: 403')
  t.equal((await resource.inject({ method: 'GET', url: '/internal', headers: { authorization: `Bearer ${real.access_token}` } })).statusCode, 403, 'a user token at the service route: 403')
  t.notMatch(logs.join('\n'), /"level":50/, 'nothing unexpected in the resource log')
  t.notOk(logs.join('\n').includes(real.access_token), 'and no token in it')
})

t.test('a 100 KB Authorization header over real HTTP: refused by the server, no crash', async (t) => {
  const h = await startOidcApp({ listen: true })
  t.teardown(h.close)
  const resource = buildApp(loadConfig({ ISSUER: h.issuer, AUDIENCE: 'api://resource', LOG_LEVEL: 'silent' }), { logStream: false })
  t.teardown(() => resource.close())
  await resource.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(resource.server.address() as AddressInfo).port}`
  const huge = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${'A'.repeat(100 * 1024)}` } })
  t.equal(huge.status, 431, 'Request Header Fields Too Large (the HTTP server bounds headers at 16 KB)')
  const auth = await fetch(`${h.issuer}/userinfo`, { headers: { authorization: `Bearer ${'A'.repeat(100 * 1024)}` } })
  t.equal(auth.status, 431, 'the auth service too')
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'both still serve')
  t.equal((await fetch(`${h.issuer}/healthz`)).status, 200)
})

t.test('DPoP (RFC 9449): a stolen DPoP-bound token or a captured proof opens nothing', async (t) => {
  // The auth service on this branch issues bearer tokens only: the bound token is one of its own
  // access tokens re-signed by its key with `cnf.jkt` added, as a DPoP-bound token will be.
  const h = await startOidcApp({ listen: true })
  t.teardown(h.close)
  const logs: string[] = []
  const resource = buildApp(loadConfig({ ISSUER: h.issuer, AUDIENCE: 'api://resource', PUBLIC_URL: 'https://api.example.com', LOG_LEVEL: 'info' }), {
    logStream: { write: (l: string) => void logs.push(l) },
  })
  t.teardown(() => resource.close())
  await resource.ready()
  const real = (await postForm(h, '/token', { grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid documents:read' })).json()
  const victim = makeDpopKey('ES256')
  const attacker = makeDpopKey('ES256')
  const nowS = () => Math.floor(Date.now() / 1000)
  const bound = await sign(h, { ...(claimsOf(real.access_token) as JWTPayload), jti: `${Math.random()}`, iat: nowS(), exp: nowS() + 600, cnf: { jkt: victim.jkt } })
  const proof = (o: Partial<DpopProofInput> = {}) => dpopProof({ key: victim, htm: 'GET', htu: 'https://api.example.com/documents', iat: nowS(), accessToken: bound, ...o })
  const call = async (headers: Record<string, string>, url = '/documents', method: 'GET' | 'DELETE' = 'GET') => await resource.inject({ method, url, headers })
  const captured = proof()
  t.equal((await call({ authorization: `DPoP ${bound}`, dpop: captured })).statusCode, 200, 'control: the victim with its key')

  const attacks: Record<string, Record<string, string> & { url?: string }> = {
    'the stolen token as Bearer': { authorization: `Bearer ${bound}` },
    'the stolen token as DPoP without a proof': { authorization: `DPoP ${bound}` },
    'the stolen token with a proof of the attacker\'s key': { authorization: `DPoP ${bound}`, dpop: proof({ key: attacker }) },
    'the victim\'s jwk, signed by the attacker': { authorization: `DPoP ${bound}`, dpop: proof({ signer: attacker }) },
    'the captured proof replayed': { authorization: `DPoP ${bound}`, dpop: captured },
    'a captured proof for another route': { authorization: `DPoP ${bound}`, dpop: proof({ htu: 'https://api.example.com/me' }) },
    'a captured proof made for another resource server': { authorization: `DPoP ${bound}`, dpop: proof({ htu: 'https://other-api.example.com/documents' }) },
    'a captured proof for another method': { authorization: `DPoP ${bound}`, dpop: proof({ htm: 'POST' }) },
    'a captured proof for another token (ath)': { authorization: `DPoP ${bound}`, dpop: proof({ accessToken: real.access_token }) },
    'a proof from yesterday': { authorization: `DPoP ${bound}`, dpop: proof({ iat: nowS() - 86_400 }) },
    'the attacker\'s proof with a bearer token as DPoP': { authorization: `DPoP ${real.access_token}`, dpop: proof({ key: attacker, accessToken: real.access_token }) },
  }
  for (const [name, headers] of Object.entries(attacks)) {
    const res = await call(headers)
    t.equal(res.statusCode, 401, name)
    t.match(res.headers['www-authenticate'], /(^|, )DPoP algs="[^"]+", realm="[^"]*"/, `${name}: a DPoP challenge`)
  }
  t.notOk(logs.join('\n').includes(bound), 'no token in the log')
  t.notOk(logs.join('\n').includes(captured), 'no proof in the log')
})
