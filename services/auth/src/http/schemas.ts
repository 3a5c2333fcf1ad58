/**
 * Request schemas (DESIGN §8: "request bodies validated by schema with size limits"), checked by
 * fastify before a handler runs. They bound the shape and the size of every parameter; the
 * protocol rules (required parameters, formats, the meaning of values) stay in the handlers, which
 * answer with the precise RFC error.
 *
 * A parameter is a string, or an array when the request repeated it: the array passes here (at
 * most a few items, each bounded) so that the handler can answer "parameter X is repeated"
 * (RFC 6749 §3.1, §3.2: parameters MUST NOT be included more than once).
 */
export interface ParamLimits {
  readonly [name: string]: number
}

function param(maxLength: number) {
  return { anyOf: [{ type: 'string', maxLength }, { type: 'array', maxItems: 8, items: { type: 'string', maxLength } }] } as const
}

/** An object of string parameters: the named ones with their own limits, any other up to `otherMax`. */
export function paramsSchema(limits: ParamLimits, otherMax = 1024) {
  return {
    type: 'object',
    maxProperties: 40,
    propertyNames: { maxLength: 128 },
    properties: Object.fromEntries(Object.entries(limits).map(([name, max]) => [name, param(max)])),
    additionalProperties: param(otherMax),
  } as const
}

/**
 * A form body's schema. Only the form encoding is checked here: another content type either has
 * no parser (415) or is refused by the handler with its own error, and a bodiless request (GET
 * semantics over POST, /userinfo with a header) has nothing to check.
 */
export function formBody(schema: ReturnType<typeof paramsSchema>) {
  return { content: { 'application/x-www-form-urlencoded': { schema } } } as const
}

/** Client authentication parameters (RFC 6749 §2.3.1, RFC 7523 §2.2). */
const CLIENT_AUTH: ParamLimits = {
  client_id: 256,
  client_secret: 512,
  client_assertion_type: 128,
  // A client assertion is refused above 8 KiB by its verifier (invalid_client); the schema only stops absurd ones.
  client_assertion: 16_384,
}

/** POST /token (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6; RFC 7636 §4.1: a verifier has 43 to 128 characters). */
export const TOKEN_BODY = paramsSchema({
  ...CLIENT_AUTH,
  grant_type: 128,
  // The user directory's own bound (users.ts usernameProblem); the login form says the same (maxlength).
  username: 256,
  password: 1024,
  scope: 2048,
  refresh_token: 512,
  code: 512,
  code_verifier: 128,
  redirect_uri: 2048,
  // RFC 8693 §2.1; the subject and actor are access tokens, which live-access-token.ts bounds at 8 KiB.
  subject_token: 8192,
  subject_token_type: 128,
  actor_token: 8192,
  actor_token_type: 128,
  requested_token_type: 128,
  // RFC 8707 §2; may repeat (an array, at most 8 values: repeated distinct ones are refused anyway).
  resource: 2048,
  audience: 2048,
})

/** POST /revoke and /introspect (RFC 7009 §2.1, RFC 7662 §2.1): an unknown or malformed token is not an error there, so the bound is generous. */
export const TOKEN_CHECK_BODY = paramsSchema({ ...CLIENT_AUTH, token: 16_384, token_type_hint: 64 })

/** GET|POST /authorize (RFC 6749 §4.1.1, OIDC Core §3.1.2.1). The handler has tighter rules for state (2048) and nonce (512) and redirects those errors. */
export const AUTHORIZE_PARAMS = paramsSchema(
  {
    client_id: 256,
    redirect_uri: 2048,
    response_type: 64,
    response_mode: 64,
    scope: 2048,
    state: 4096,
    nonce: 1024,
    code_challenge: 128,
    code_challenge_method: 16,
    prompt: 128,
    max_age: 32,
    login_hint: 1024,
    // OIDC Core §3.1.2.1: space-separated; the handler keeps the values it knows.
    acr_values: 1024,
    request: 16_384,
    request_uri: 2048,
    // RFC 9449 §10: a SHA-256 JWK thumbprint has 43 characters; the handler checks the form.
    dpop_jkt: 64,
    // RFC 8707 §2: may repeat (an array of at most 8).
    resource: 2048,
  },
  2048,
)

/**
 * POST /par (RFC 9126 §2.1): the parameters of /authorize (whatever they become, with the same
 * bounds) plus the client's authentication.
 */
export const PAR_BODY = {
  ...AUTHORIZE_PARAMS,
  properties: { ...AUTHORIZE_PARAMS.properties, ...paramsSchema(CLIENT_AUTH).properties },
} as const

/** POST /login: the login form's fields (html.ts loginPage: username maxlength 256, password 1024). */
export const LOGIN_BODY = paramsSchema({ interaction: 64, csrf: 128, username: 256, password: 1024 }, 256)

/**
 * POST /login/second-factor: the second step's forms (signin/second-step-page.ts): its id and
 * token, a TOTP code (six digits, spaces allowed) or a recovery code (`xxxxx-xxxxx`, typed loosely).
 */
export const SECOND_FACTOR_BODY = paramsSchema({ step: 64, csrf: 128, code: 32, recovery_code: 64 }, 256)

/** The fields of a passkey ceremony's form (mfa/passkeys.ts): its pending form and the browser's response (MAX_CREDENTIAL_JSON). */
const PASSKEY_FIELDS: ParamLimits = { ceremony: 64, ceremony_csrf: 128, credential: 16_384 }

/** POST /login/passkey: the pending login's fields and the ceremony's (html.ts passkeyForm). */
export const LOGIN_PASSKEY_BODY = paramsSchema({ interaction: 64, csrf: 128, ...PASSKEY_FIELDS }, 256)

/** POST /login/second-factor/passkey: the second step's fields and the ceremony's. */
export const SECOND_FACTOR_PASSKEY_BODY = paramsSchema({ step: 64, csrf: 128, ...PASSKEY_FIELDS }, 256)

/** GET|POST /logout (OIDC RP-Initiated Logout 1.0 §2). */
export const LOGOUT_PARAMS = paramsSchema({ id_token_hint: 8192, post_logout_redirect_uri: 2048, client_id: 256, state: 2048, logout_hint: 1024, ui_locales: 256 }, 1024)

/** POST /userinfo (RFC 6750 §2.2 form-encoded body). */
export const USERINFO_BODY = paramsSchema({ access_token: 8192 }, 1024)

/** POST /device_authorization (RFC 8628 §3.1): the client's authentication and the scope. */
export const DEVICE_AUTHORIZATION_BODY = paramsSchema({ ...CLIENT_AUTH, scope: 2048 })

/** GET|POST /device: the verification page's fields (device/verification-page.ts: a user code is typed with at most 64 characters). */
export const DEVICE_PARAMS = paramsSchema({ user_code: 64, form: 64, confirm: 64, csrf: 128, action: 16 }, 256)

/** POST /account/...: the account page's forms (account/account-page.ts: passwords at most 1024 characters; a factor's id; a TOTP code to confirm an enrolment; a passkey ceremony). */
export const ACCOUNT_BODY = paramsSchema({ form: 64, csrf: 128, session: 64, current_password: 1024, new_password: 1024, new_password_again: 1024, factor: 64, code: 32, ...PASSKEY_FIELDS }, 256)

/** GET /account: the notice after a form's redirect. */
export const ACCOUNT_QUERY = paramsSchema({ notice: 32 }, 64)
