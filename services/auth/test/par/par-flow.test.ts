/**
 * PAR end to end with a certified relying-party library, openid-client v6, as it is:
 * `buildAuthorizationUrlWithPAR` finds the endpoint in discovery, pushes (client_secret_basic,
 * private_key_jwt, none), and the browser goes to /authorize with only client_id and
 * request_uri, signs in, and the code is exchanged for tokens (ID token validated). Once on the
 * in-memory store, once on Redis; a second use of the same URL is refused.
 */
import t, { type Test } from 'tap'
import * as oidc from 'openid-client'
import { browserLogin, CookieJar, makeKey, startRedis } from '@gatehouse/test-harness'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'

const REDIRECT_URI = 'http://127.0.0.1:3000/callback'
const SPA_REDIRECT_URI = 'http://127.0.0.1:3000/spa/callback'

async function pushedLogin(t: Test, h: OidcApp, config: oidc.Configuration, redirectUri: string, scope: string): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers> {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const url = await oidc.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  })
  t.equal(url.origin + url.pathname, `${h.issuer}/authorize`)
  t.same([...url.searchParams.keys()].sort(), ['client_id', 'request_uri'], 'only client_id and request_uri travel through the browser (RFC 9126 §4)')
  const login = await browserLogin(url, { jar: new CookieJar() })
  t.equal(login.redirect.origin + login.redirect.pathname, redirectUri)
  t.equal(login.redirect.searchParams.get('iss'), h.issuer)
  const tokens = await oidc.authorizationCodeGrant(config, login.redirect, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true })
  t.equal(tokens.claims()!.nonce, nonce, 'the ID token carries the pushed nonce')
  const again = await fetch(url, { redirect: 'manual' })
  t.equal(again.status, 400, 'the same authorization URL a second time: refused (single use)')
  t.equal(again.headers.get('location'), null)
  return tokens
}

function flow(t: Test, env: () => Record<string, string>) {
  t.test('openid-client pushes with client_secret_basic, private_key_jwt and none, then completes the code flow', async (t) => {
    const webKey = await makeKey('web-jwt-key', 'ES256')
    const h = await startOidcApp({
      listen: true,
      env: env(),
      clients: [{
        client_id: 'web-jwt', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [webKey.publicJwk] },
        grant_types: ['authorization_code'], scope: 'openid profile', audience: 'api://resource', redirect_uris: [REDIRECT_URI],
        require_pushed_authorization_requests: true,
      }],
    })
    t.teardown(h.close)
    const discover = (clientId: string, auth: oidc.ClientAuth) => oidc.discovery(new URL(h.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] })

    const web = await discover('web', oidc.ClientSecretBasic('web-secret'))
    t.equal(web.serverMetadata().pushed_authorization_request_endpoint, `${h.issuer}/par`)
    t.equal(web.serverMetadata().require_pushed_authorization_requests, false)
    const tokens = await pushedLogin(t, h, web, REDIRECT_URI, 'openid profile documents:read')
    t.equal(tokens.claims()!.aud, 'web')
    t.match(tokens.scope, /documents:read/)
    t.type(tokens.refresh_token, 'string')

    const jwtClient = await discover('web-jwt', oidc.PrivateKeyJwt(webKey.privateKey))
    t.equal((await pushedLogin(t, h, jwtClient, REDIRECT_URI, 'openid profile')).claims()!.aud, 'web-jwt', 'private_key_jwt (and a client that requires PAR)')

    const spa = await discover('spa', oidc.None())
    t.equal((await pushedLogin(t, h, spa, SPA_REDIRECT_URI, 'openid profile')).claims()!.aud, 'spa', 'a public client (none)')

    t.equal(h.logs.events('par.pushed').length, 3)
  })
}

t.test('in-memory store', async (t) => flow(t, () => ({})))

t.test('Redis store', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  flow(t, () => ({ REDIS_URL: redis.url }))
})
