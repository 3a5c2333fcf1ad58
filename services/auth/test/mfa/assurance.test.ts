/**
 * What a sign-in must reach (mfa/assurance.ts): requiredAcr for a client and its acr_values,
 * meetsAcr / signInMeets, nextSignInStep after the password; and acr_values as the authorization
 * request reads it (OIDC Core §3.1.2.1: voluntary, in order of preference, unknown values ignored).
 */
import t from 'tap'
import {
  ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT, ACR_VALUES, AMR_PASSWORD, AMR_PASSWORD_TOTP, acrOf, mandatoryAcr, meetsAcr, nextSignInStep, parseAcrValues, passkeyAmr, requiredAcr, signInMeets,
} from '../../src/mfa/assurance.js'
import { isAuthorizationRequest, parseAuthorizationRequest, type AuthorizationRequest } from '../../src/authorize/authorization-request.js'
import { clientFromConfig, type ClientDirectory } from '../../src/directory/clients.js'
import { s256 } from '../../src/authorize/pkce.js'

const PASSKEY = passkeyAmr({ backedUp: false, withPassword: false })
const plain = { requireMfa: false }
const strict = { requireMfa: true }

t.test('acr values are ordered weakest first; acrOf and meetsAcr follow that order', async (t) => {
  t.same(ACR_VALUES, [ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT])
  t.equal(acrOf(AMR_PASSWORD), ACR_PASSWORD)
  t.equal(acrOf(AMR_PASSWORD_TOTP), ACR_MFA)
  t.equal(acrOf(PASSKEY), ACR_PHISHING_RESISTANT)
  t.ok(meetsAcr(AMR_PASSWORD, ACR_PASSWORD))
  t.notOk(meetsAcr(AMR_PASSWORD, ACR_MFA), 'a password alone is not MFA')
  t.ok(meetsAcr(AMR_PASSWORD_TOTP, ACR_MFA))
  t.notOk(meetsAcr(AMR_PASSWORD_TOTP, ACR_PHISHING_RESISTANT), 'a TOTP code can be relayed')
  t.ok(meetsAcr(PASSKEY, ACR_MFA), 'a stronger acr meets a weaker one')
  t.ok(meetsAcr(PASSKEY, ACR_PHISHING_RESISTANT))
  t.ok(signInMeets(AMR_PASSWORD, null), 'nothing required: anything meets it')
  t.notOk(signInMeets(AMR_PASSWORD, ACR_MFA))
})

t.test('requiredAcr: require_mfa, else the first supported acr_values value, and the stronger of both', async (t) => {
  t.equal(requiredAcr(plain), null, 'nothing asked, nothing required')
  t.equal(requiredAcr(plain, {}), null)
  t.equal(requiredAcr(plain, { acrValues: [] }), null)
  t.equal(requiredAcr(strict), ACR_MFA, 'require_mfa')
  t.equal(requiredAcr(plain, { acrValues: [ACR_MFA, ACR_PASSWORD] }), ACR_MFA, 'the most preferred value (the first), not the weakest')
  t.equal(requiredAcr(plain, { acrValues: [ACR_PASSWORD, ACR_PHISHING_RESISTANT] }), ACR_PASSWORD)
  t.equal(requiredAcr(plain, { acrValues: ['urn:unknown', ACR_PHISHING_RESISTANT] }), ACR_PHISHING_RESISTANT, 'unknown values are skipped')
  t.equal(requiredAcr(strict, { acrValues: [ACR_PASSWORD] }), ACR_MFA, 'a request cannot lower the client policy')
  t.equal(requiredAcr(strict, { acrValues: [ACR_PHISHING_RESISTANT] }), ACR_PHISHING_RESISTANT, 'a request may ask for more')
  t.equal(mandatoryAcr(strict), ACR_MFA)
  t.equal(mandatoryAcr(plain), null, 'acr_values is never mandatory')
})

t.test('nextSignInStep: what the lead calls after the password step (and after a second factor)', async (t) => {
  const has = { hasSecondFactor: true }
  const none = { hasSecondFactor: false }
  t.equal(nextSignInStep(AMR_PASSWORD, plain, undefined, none), 'complete', 'nothing required')
  t.equal(nextSignInStep(AMR_PASSWORD, plain, undefined, has), 'complete', 'a factor is not asked for when nothing requires it')
  t.equal(nextSignInStep(AMR_PASSWORD, null, undefined, has), 'complete', 'device/account page sign-ins ask nothing')
  t.equal(nextSignInStep(AMR_PASSWORD, strict, undefined, has), 'second_factor', 'require_mfa, the user has a factor')
  t.equal(nextSignInStep(AMR_PASSWORD, strict, undefined, none), 'enrol_required', 'require_mfa, the user has none: no session, the account page')
  t.equal(nextSignInStep(AMR_PASSWORD_TOTP, strict, undefined, has), 'complete', 'after the second factor')
  t.equal(nextSignInStep(AMR_PASSWORD, plain, { acrValues: [ACR_MFA] }, has), 'second_factor', 'acr_values asks for MFA and the user can give it')
  t.equal(nextSignInStep(AMR_PASSWORD, plain, { acrValues: [ACR_MFA] }, none), 'complete', 'acr_values is voluntary: a user without a factor still signs in (acr password)')
  t.equal(nextSignInStep(AMR_PASSWORD_TOTP, plain, { acrValues: [ACR_PHISHING_RESISTANT] }, has), 'complete', 'one second factor per sign-in: a voluntary shortfall is accepted')
  t.equal(nextSignInStep(AMR_PASSWORD_TOTP, strict, { acrValues: [ACR_PHISHING_RESISTANT] }, has), 'complete', 'the mandatory part (MFA) is met')
  t.equal(nextSignInStep(PASSKEY, strict, { acrValues: [ACR_PHISHING_RESISTANT] }, has), 'complete')
  t.equal(nextSignInStep(AMR_PASSWORD, strict, { acrValues: [ACR_PASSWORD] }, none), 'enrol_required', 'a request cannot lower require_mfa')
})

t.test('parseAcrValues keeps known values once, in order; unknown ones are ignored', async (t) => {
  t.same(parseAcrValues(''), [])
  t.same(parseAcrValues(`${ACR_MFA} ${ACR_PASSWORD}`), [ACR_MFA, ACR_PASSWORD])
  t.same(parseAcrValues(`urn:x  ${ACR_PHISHING_RESISTANT} ${ACR_PHISHING_RESISTANT} 0 1`), [ACR_PHISHING_RESISTANT], 'repeated value once; unknown and empty items dropped')
  t.same(parseAcrValues('urn:x urn:y'), [], 'only unknown: as if none')
  t.same(parseAcrValues(ACR_MFA.toUpperCase()), [], 'case-sensitive (OIDC values are strings compared exactly)')
})

const REDIRECT = 'https://app.example/cb'
const client = clientFromConfig({
  client_id: 'app', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], scope: 'openid', audience: 'api://x', redirect_uris: [REDIRECT], post_logout_redirect_uris: [], jwks: null,
})
const clients = { get: async (id: string) => (id === 'app' ? client : null) } as unknown as ClientDirectory

async function parse(extra: Record<string, unknown>) {
  return await parseAuthorizationRequest({ client_id: 'app', redirect_uri: REDIRECT, response_type: 'code', code_challenge: s256('x'.repeat(43)), code_challenge_method: 'S256', state: 's', ...extra }, clients)
}

t.test('the authorization request carries the acr_values it knows (also through PAR, same parser)', async (t) => {
  const known = await parse({ acr_values: `${ACR_MFA} urn:other ${ACR_PASSWORD} ${ACR_MFA}` })
  t.same(known.kind === 'ok' ? known.request.acrValues : 'not ok', [ACR_MFA, ACR_PASSWORD], 'known values, in order, once')
  const unknown = await parse({ acr_values: 'urn:other 0' })
  t.ok(unknown.kind === 'ok' && !('acrValues' in unknown.request), 'only unknown values: as if none was asked')
  const absent = await parse({})
  t.ok(absent.kind === 'ok' && !('acrValues' in absent.request))
  const empty = await parse({ acr_values: '' })
  t.ok(empty.kind === 'ok' && !('acrValues' in empty.request), 'empty counts as absent')
  const repeated = await parse({ acr_values: [ACR_MFA, ACR_PASSWORD] })
  t.match(repeated, { kind: 'redirect', state: 's', error: { code: 'invalid_request' } }, 'a repeated parameter is invalid_request (RFC 6749 §3.1), redirected')
  const claims = await parse({ claims: '{"id_token":{"acr":{"essential":true}}}' })
  t.equal(claims.kind, 'ok', 'the claims parameter is not supported, and ignored (claims_parameter_supported false)')
})

t.test('isAuthorizationRequest checks acrValues on the way back from the login form', async (t) => {
  const base: AuthorizationRequest = { clientId: 'app', redirectUri: REDIRECT, scope: 'openid', codeChallenge: s256('x'.repeat(43)), prompt: [] }
  t.ok(isAuthorizationRequest(base))
  t.ok(isAuthorizationRequest({ ...base, acrValues: [ACR_MFA] }))
  t.notOk(isAuthorizationRequest({ ...base, acrValues: ['urn:other'] }), 'an unknown value was never kept')
  t.notOk(isAuthorizationRequest({ ...base, acrValues: [] }), 'empty is absent')
  t.notOk(isAuthorizationRequest({ ...base, acrValues: ACR_MFA }), 'not a list')
  t.notOk(isAuthorizationRequest({ ...base, acrValues: [1] }))
})
