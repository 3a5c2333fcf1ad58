import t from 'tap'
import { assertB64Token, bearerChallenge, dpopChallenge, extractBearerToken } from '../src/index.js'

/** RFC 6750 in one place: the Bearer header parser (§2.1) and the challenge builder (§3). */

t.test('extractBearerToken: the scheme, case-insensitive; exactly one space; an empty token is invalid_request', async (t) => {
  t.equal(extractBearerToken(undefined), null, 'no header')
  t.equal(extractBearerToken(''), null, 'an empty header')
  t.equal(extractBearerToken('Basic dXNlcjpwYXNz'), null, 'another scheme: no bearer token here')
  t.equal(extractBearerToken('Bearerabc'), null, 'a longer scheme name is another scheme')
  t.equal(extractBearerToken('Bear abc'), null)
  t.equal(extractBearerToken('Bearer abc'), 'abc')
  t.equal(extractBearerToken('bearer abc'), 'abc', 'lowercase (RFC 7235 §2.1)')
  t.equal(extractBearerToken('bEaReR abc'), 'abc')
  for (const empty of ['Bearer', 'bearer', 'Bearer ', 'BEARER ', 'Bearer    ']) {
    t.throws(() => extractBearerToken(empty), { code: 'invalid_request', statusCode: 400, detail: 'empty_bearer' }, JSON.stringify(empty))
  }
  // RFC 6750 §2.1: "Bearer" 1*SP b64token. What follows the spaces is the token, checked by
  // assertB64Token: two credentials, or a tab, fail there.
  t.equal(extractBearerToken('Bearer  abc'), 'abc', 'two spaces')
  t.equal(extractBearerToken('bearer    abc'), 'abc', 'several spaces')
  t.equal(extractBearerToken('Bearer\tabc'), null, 'a tab is not the separator: another scheme')
  t.throws(() => assertB64Token('abc  def'), { code: 'invalid_request' }, 'two credentials after spaces')
  t.throws(() => assertB64Token('abc def'), { code: 'invalid_request' }, 'two credentials')
  t.throws(() => assertB64Token('abc, Bearer def'), { code: 'invalid_request' }, 'a list of credentials')
})

t.test('assertB64Token: RFC 6750 §2.1 b64token', async (t) => {
  for (const ok of ['abc', 'a.b.c', 'a-b_c~d+e/f', 'abc==', 'A9', '~']) t.doesNotThrow(() => assertB64Token(ok), ok)
  for (const bad of ['', 'a b', 'a=b', '=', 'a"b', 'a\\b', 'a,b', ' abc', 'abc ', 'é', 'a\tb', 'a\u0000b', '€']) {
    t.throws(() => assertB64Token(bad), { code: 'invalid_request', description: 'the Authorization header is malformed' }, JSON.stringify(bad))
  }
})

t.test('bearerChallenge: RFC 6750 §3 parameters, quoted', async (t) => {
  t.equal(bearerChallenge({ realm: 'gatehouse' }), 'Bearer realm="gatehouse"', 'no error code when no token was sent (§3.1)')
  t.equal(
    bearerChallenge({ realm: 'api://resource', error: 'insufficient_scope', errorDescription: 'the access token lacks the openid scope', scope: 'openid documents:read' }),
    'Bearer realm="api://resource", error="insufficient_scope", error_description="the access token lacks the openid scope", scope="openid documents:read"',
  )
  t.equal(
    bearerChallenge({ realm: 'gatehouse', error: 'invalid_request', errorDescription: 'the Authorization header must be "Bearer <token>"' }),
    'Bearer realm="gatehouse", error="invalid_request", error_description="the Authorization header must be Bearer <token>"',
    '§3: error_description may not hold a double quote, so it is dropped (an escape is not allowed there either)',
  )
  t.equal(bearerChallenge({ realm: 'r', error: 'invalid_token', errorDescription: 'a\\b\\"c' }), 'Bearer realm="r", error="invalid_token", error_description="abc"', 'backslashes dropped')
  t.equal(
    bearerChallenge({ realm: 'r', error: 'invalid_token', errorDescription: 'jeton périmé – ✓ 🙂\r\nSet-Cookie: x=1' }),
    'Bearer realm="r", error="invalid_token", error_description="jeton prim   Set-Cookie: x=1"',
    'non-ASCII and controls dropped: no header injection, and a value Node accepts',
  )
  t.equal(bearerChallenge({ realm: 'say "hi" \\ bye\u00e9' }), 'Bearer realm="say \\"hi\\" \\\\ bye"', 'realm is a quoted-string: quote and backslash escaped (RFC 7230 §3.2.6)')
  t.equal(bearerChallenge({ realm: 'r', error: 'invalid_token', errorDescription: '' }), 'Bearer realm="r", error="invalid_token", error_description=""')
  t.equal(bearerChallenge({ realm: 'r', scope: 'a"b\\c' }), 'Bearer realm="r", scope="abc"')
  t.equal(
    bearerChallenge({ realm: 'r', error: 'insufficient_user_authentication', acrValues: 'urn:a urn:b' }),
    'Bearer realm="r", error="insufficient_user_authentication", acr_values="urn:a urn:b"',
    'RFC 9470 §3: acr_values in the challenge',
  )
  t.equal(dpopChallenge({ algs: ['ES256'], error: 'insufficient_user_authentication', acrValues: 'urn:"a' }), 'DPoP algs="ES256", error="insufficient_user_authentication", acr_values="urn:a"')
})

t.test('every challenge is a header value Node accepts', async (t) => {
  const { validateHeaderValue } = await import('node:http')
  const awkward = ['"', '\\', '\u00ff', '\u0100', '\ud83d', '\u0000', '\r\n', 'é"\\\t']
  for (const v of awkward) {
    const value = bearerChallenge({ realm: v, error: v, errorDescription: v, scope: v })
    t.doesNotThrow(() => validateHeaderValue('www-authenticate', value), JSON.stringify(v))
  }
})

t.test('extractAccessToken: Bearer and DPoP schemes alike (RFC 9449 §7.1)', async (t) => {
  const { extractAccessToken, dpopChallenge } = await import('../src/bearer.js')
  t.same(extractAccessToken('DPoP abc.def'), { scheme: 'DPoP', token: 'abc.def' })
  t.same(extractAccessToken('dpop   abc'), { scheme: 'DPoP', token: 'abc' })
  t.same(extractAccessToken('bEaReR abc'), { scheme: 'Bearer', token: 'abc' })
  t.equal(extractAccessToken('DPoPabc'), null)
  t.equal(extractAccessToken('Basic abc'), null)
  t.equal(extractAccessToken('Dp'), null)
  t.equal(extractAccessToken(undefined), null)
  t.throws(() => extractAccessToken('DPoP '), { code: 'invalid_request', detail: 'empty_dpop' })
  t.equal(extractBearerToken('DPoP abc'), null, 'a DPoP token is not a bearer token')
  t.equal(
    dpopChallenge({ algs: ['ES256', 'RS256'], realm: 'api://r', error: 'invalid_dpop_proof', errorDescription: 'bad "proof"' }),
    'DPoP algs="ES256 RS256", realm="api://r", error="invalid_dpop_proof", error_description="bad proof"',
  )
})
