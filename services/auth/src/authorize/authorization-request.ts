import { InvalidRequest, OAuthError, UnauthorizedClient, UnsupportedResponseType } from '@gatehouse/service-kit'
import type { Client, ClientDirectory } from '../directory/clients.js'
import { isS256Challenge } from './pkce.js'
import { resolveScope } from '../tokens/scope.js'
import { authorizedResources } from '../tokens/resource-indicators.js'
import { isAcr, parseAcrValues } from '../mfa/assurance.js'

/** A validated authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1). */
export interface AuthorizationRequest {
  clientId: string
  redirectUri: string
  /** The granted scope (resolved against the client's). */
  scope: string
  state?: string
  nonce?: string
  codeChallenge: string
  /** seconds (OIDC Core §3.1.2.1 max_age) */
  maxAge?: number
  /** The prompt values we act on: `none` (never show a page) and `login` (always re-authenticate). */
  prompt: ('none' | 'login')[]
  loginHint?: string
  /** RFC 9449 §10: the JWK thumbprint (RFC 7638, SHA-256) of the DPoP key the code is bound to. */
  dpopJkt?: string
  /** The granted resources (RFC 8707 §2): the requested ones, or the client's audience. */
  resources?: string[]
  /**
   * OIDC Core §3.1.2.1 `acr_values`: the ones we support (mfa/assurance.ts ACR_VALUES), in the
   * client's order of preference; absent when none was asked or none of those asked is ours.
   */
  acrValues?: string[]
}

/**
 * What to do with a request:
 *  - `page`: the client or the redirect URI cannot be trusted, so the error is shown to the user
 *    and never redirected (RFC 6749 §4.1.2.1, §10.15 open redirectors);
 *  - `redirect`: the error goes back to the validated redirect URI;
 *  - `ok`: proceed.
 */
export type ParsedAuthorization =
  | { kind: 'page'; error: OAuthError }
  | { kind: 'redirect'; client: Client; redirectUri: string; state?: string; error: OAuthError }
  | { kind: 'ok'; client: Client; request: AuthorizationRequest }

const MAX_STATE = 2048
const MAX_NONCE = 512
const MAX_LOGIN_HINT = 256
/** A base64url SHA-256 JWK thumbprint (RFC 7638): 32 bytes, 43 characters. */
const JKT = /^[A-Za-z0-9_-]{43}$/

/**
 * Reads the parameters of GET (query) or POST (form) /authorize. Parameters must not repeat
 * (RFC 6749 §3.1), but for `resource` (RFC 8707 §2); empty values count as absent.
 */
export async function parseAuthorizationRequest(raw: unknown, clients: ClientDirectory): Promise<ParsedAuthorization> {
  const params = new Map<string, string>()
  const repeated = new Set<string>()
  const malformed = new Set<string>()
  const resources: string[] = []
  if (typeof raw === 'object' && raw !== null) {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (k === 'resource') {
        const values: unknown[] = Array.isArray(v) ? v : [v]
        if (values.every((x) => typeof x === 'string')) resources.push(...(values as string[]).filter((x) => x !== ''))
        else malformed.add(k)
      } else if (Array.isArray(v)) repeated.add(k)
      else if (typeof v !== 'string') malformed.add(k)
      else if (v !== '') params.set(k, v)
    }
  }
  const page = (description: string): ParsedAuthorization => ({ kind: 'page', error: new InvalidRequest(description) })

  // 1. Who is asking, and where may the answer go? Until both are known, nothing is redirected.
  if (repeated.has('client_id') || malformed.has('client_id')) return page('client_id is repeated or malformed')
  const clientId = params.get('client_id')
  if (clientId === undefined) return page('client_id is missing')
  const client = clientId.length <= 256 ? await clients.get(clientId) : null
  if (client === null) return page('the client is unknown')
  if (repeated.has('redirect_uri') || malformed.has('redirect_uri')) return page('redirect_uri is repeated or malformed')
  const redirectUri = params.get('redirect_uri')
  // OIDC Core §3.1.2.1 makes redirect_uri required; exact string match (RFC 6749 §3.1.2.3, DESIGN §8).
  if (redirectUri === undefined) return page('redirect_uri is missing')
  if (!client.redirectUris.includes(redirectUri)) return page('redirect_uri is not registered for this client')

  // 2. From here every error is redirected, with the state when it can be echoed unambiguously.
  const stateOk = !repeated.has('state') && !malformed.has('state') && (params.get('state')?.length ?? 0) <= MAX_STATE
  const state = stateOk ? params.get('state') : undefined
  const fail = (error: OAuthError): ParsedAuthorization => ({ kind: 'redirect', client, redirectUri, ...(state === undefined ? {} : { state }), error })

  if (!stateOk) return fail(new InvalidRequest('state is repeated, malformed or longer than 2048 characters'))
  const dupes = [...repeated, ...malformed]
  if (dupes.length > 0) return fail(new InvalidRequest(`parameter ${dupes[0]!.slice(0, 64)} is repeated or malformed`))
  if (!client.grantTypes.has('authorization_code')) return fail(new UnauthorizedClient('the client may not use the authorization code flow'))
  // OIDC Core §6: request objects are not supported (discovery says so).
  if (params.has('request') || params.has('request_uri')) return fail(new InvalidRequest('request objects are not supported'))

  const responseType = params.get('response_type')
  if (responseType === undefined) return fail(new InvalidRequest('response_type is missing'))
  if (responseType !== 'code') return fail(new UnsupportedResponseType('only response_type=code is supported'))
  const responseMode = params.get('response_mode')
  if (responseMode !== undefined && responseMode !== 'query') return fail(new InvalidRequest('only response_mode=query is supported'))

  // RFC 7636 §4.4.1: PKCE is required for every client here, and only S256.
  const challenge = params.get('code_challenge')
  if (challenge === undefined) return fail(new InvalidRequest('code_challenge is required (PKCE, S256)'))
  if (params.get('code_challenge_method') !== 'S256') return fail(new InvalidRequest('code_challenge_method must be S256'))
  if (!isS256Challenge(challenge)) return fail(new InvalidRequest('code_challenge is malformed'))

  let scope: string
  try {
    scope = resolveScope(params.get('scope'), client.scopes)
  } catch (err) {
    if (err instanceof OAuthError) return fail(err)
    throw err
  }

  let granted: string[]
  try {
    granted = authorizedResources(resources, client)
  } catch (err) {
    if (err instanceof OAuthError) return fail(err)
    throw err
  }

  const nonce = params.get('nonce')
  if (nonce !== undefined && nonce.length > MAX_NONCE) return fail(new InvalidRequest('nonce is longer than 512 characters'))

  // OIDC Core §3.1.2.1: "none" with any other value is an error; values we do not act on
  // (consent, select_account) are ignored, as the OP MAY.
  const promptValues = (params.get('prompt') ?? '').split(' ').filter(Boolean)
  if (promptValues.includes('none') && promptValues.length > 1) return fail(new InvalidRequest('prompt=none cannot be combined with other values'))
  const prompt = promptValues.filter((p): p is 'none' | 'login' => p === 'none' || p === 'login')

  const maxAgeRaw = params.get('max_age')
  if (maxAgeRaw !== undefined && !/^\d{1,9}$/.test(maxAgeRaw)) return fail(new InvalidRequest('max_age must be a whole number of seconds'))

  const dpopJkt = params.get('dpop_jkt')
  if (dpopJkt !== undefined && !JKT.test(dpopJkt)) return fail(new InvalidRequest('dpop_jkt must be the base64url SHA-256 thumbprint of a JWK (RFC 9449 §10)'))

  // OIDC Core §3.1.2.1: voluntary; values we do not know are ignored (and only those: as if none).
  const acrValues = parseAcrValues(params.get('acr_values') ?? '')

  const loginHint = params.get('login_hint')
  const request: AuthorizationRequest = { clientId: client.id, redirectUri, scope, codeChallenge: challenge, prompt, resources: granted }
  if (state !== undefined) request.state = state
  if (nonce !== undefined) request.nonce = nonce
  if (maxAgeRaw !== undefined) request.maxAge = Number(maxAgeRaw)
  if (loginHint !== undefined && loginHint.length <= MAX_LOGIN_HINT) request.loginHint = loginHint
  if (dpopJkt !== undefined) request.dpopJkt = dpopJkt
  if (acrValues.length > 0) request.acrValues = acrValues
  return { kind: 'ok', client, request }
}

/** A request carried through the login form, checked again on the way back (never trusted blindly). */
export function isAuthorizationRequest(v: unknown): v is AuthorizationRequest {
  if (typeof v !== 'object' || v === null) return false
  const r = v as Record<string, unknown>
  const optionalString = (x: unknown) => x === undefined || typeof x === 'string'
  return (
    typeof r.clientId === 'string' &&
    typeof r.redirectUri === 'string' &&
    typeof r.scope === 'string' &&
    typeof r.codeChallenge === 'string' &&
    isS256Challenge(r.codeChallenge) &&
    Array.isArray(r.prompt) &&
    r.prompt.every((p) => p === 'none' || p === 'login') &&
    optionalString(r.state) &&
    optionalString(r.nonce) &&
    optionalString(r.loginHint) &&
    (r.dpopJkt === undefined || (typeof r.dpopJkt === 'string' && JKT.test(r.dpopJkt))) &&
    (r.resources === undefined || (Array.isArray(r.resources) && r.resources.every((x) => typeof x === 'string'))) &&
    (r.acrValues === undefined || (Array.isArray(r.acrValues) && r.acrValues.length > 0 && r.acrValues.every((x) => typeof x === 'string' && isAcr(x)))) &&
    (r.maxAge === undefined || (typeof r.maxAge === 'number' && Number.isSafeInteger(r.maxAge) && r.maxAge >= 0))
  )
}
