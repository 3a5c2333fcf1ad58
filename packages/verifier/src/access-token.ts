import { isOAuthError, type OAuthError } from '@gatehouse/service-kit'
import { jwtVerify, type CryptoKey, type FlattenedJWSInput, type JWTHeaderParameters, type JWTVerifyOptions, type KeyObject } from 'jose'
import { toAuthContext, type AuthContext } from './auth-context.js'
import { invalidToken, type InvalidTokenReason } from './errors.js'

/**
 * The one rulebook for Gatehouse access tokens (RFC 9068, DESIGN §4), free of
 * any web framework and of where the keys come from: the `Verifier` runs it
 * with the remote JWKS, the auth service with its own in-process key ring.
 */

/** Where the verification key comes from: jose's `createLocalJWKSet`/`createRemoteJWKSet`, or any lookup by header. */
export type AccessTokenKeys = (header: JWTHeaderParameters, token: FlattenedJWSInput) => CryptoKey | KeyObject | Uint8Array | Promise<CryptoKey | KeyObject | Uint8Array>

/** Accept any `aud`: for the issuer's own introspection, which judges the audience itself (RFC 7662 §4). */
export const ANY_AUDIENCE: unique symbol = Symbol('gatehouse.anyAudience')

export interface AccessTokenRules {
  issuer: string
  /** The audience the token must name, or `ANY_AUDIENCE` (the caller then checks `aud` itself). */
  audience: string | typeof ANY_AUDIENCE
  /** The allowed JWS algorithms; anything else (and `none`) is refused before a key is looked up. */
  algorithms: readonly string[]
  /** Seconds of leeway for `exp`, `nbf` and an `iat` from the future. */
  clockTolerance: number
  /** Seconds an `iat` may lie in the future, when it should differ from `clockTolerance`. */
  issuedAtLeeway?: number
  /** Longer tokens are refused before they are parsed. */
  maxTokenLength: number
}

/** Compact JWS: three base64url segments. Anything else is refused before jose parses it. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** RFC 9068 §2.2: the claims every access token carries. */
export const REQUIRED_CLAIMS: readonly string[] = Object.freeze(['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'])

/**
 * Maps a jose failure to `invalid_token`, keeping the reason for the log.
 * Branches on jose's error `code` (and `claim`), never on messages.
 */
export function toInvalidToken(err: unknown): OAuthError {
  if (isOAuthError(err)) return err
  const { code, claim, reason } = (err ?? {}) as { code?: unknown; claim?: unknown; reason?: unknown }
  let why: InvalidTokenReason
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      why = 'expired'
      break
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (reason === 'missing') why = 'missing_claim'
      else if (claim === 'typ') why = 'wrong_typ'
      else if (claim === 'iss') why = 'wrong_issuer'
      else if (claim === 'aud') why = 'wrong_audience'
      else if (claim === 'nbf') why = 'not_yet_valid'
      else why = 'invalid_claim'
      break
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      why = 'bad_signature'
      break
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      why = 'alg_not_allowed'
      break
    case 'ERR_JWKS_NO_MATCHING_KEY':
      why = 'unknown_kid'
      break
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      why = 'malformed'
      break
    default:
      // jose throws TypeError when a key does not fit the algorithm (e.g. a short RSA modulus).
      why = err instanceof TypeError ? 'unusable_key' : 'verification_error'
  }
  return invalidToken(why, err)
}

/**
 * Refuses headers that would let the token choose its own key (`jku`, `x5u`, `jwk`, `x5c`) or
 * extend the rules (`crit`), never honoured (RFC 8725 §3.10, DESIGN §4), and a missing `kid`.
 */
export function checkTokenHeader(header: JWTHeaderParameters): string {
  if (header.jku !== undefined || header.x5u !== undefined || header.jwk !== undefined || header.x5c !== undefined || header.crit !== undefined) {
    throw invalidToken('forbidden_header')
  }
  const { kid } = header
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) throw invalidToken('missing_kid')
  return kid
}

export interface VerifiedAccessToken {
  auth: AuthContext
  header: JWTHeaderParameters
}

/**
 * The access-token checks, built once: size and shape, allowed `alg`, the
 * header rules, the signature (with `keys`), `typ: at+jwt` (RFC 9068 §4),
 * `iss`, `aud`, `exp`/`nbf` with the tolerance, `iat` not in the future, the
 * RFC 9068 §2.2 claims present and of the right types. Every failure is an
 * `invalid_token` OAuthError whose `detail` names the reason (an `OAuthError`
 * the key lookup throws, e.g. 503 `temporarily_unavailable`, passes through).
 */
export class AccessTokenRulebook {
  readonly #rules: AccessTokenRules
  readonly #keys: AccessTokenKeys
  readonly #jose: JWTVerifyOptions

  constructor(keys: AccessTokenKeys, rules: AccessTokenRules) {
    this.#rules = { ...rules, algorithms: [...rules.algorithms] }
    this.#keys = keys
    this.#jose = {
      algorithms: [...rules.algorithms],
      issuer: rules.issuer,
      ...(rules.audience === ANY_AUDIENCE ? {} : { audience: rules.audience }),
      typ: 'at+jwt', // RFC 9068 §4: an ID token or any other JWT is not an access token
      clockTolerance: rules.clockTolerance,
      requiredClaims: [...REQUIRED_CLAIMS],
    }
  }

  /**
   * Verifies `token` at `now` (ms; omitted: jose reads the real clock, which
   * spares a fresh options object per call, about 10 µs, measured).
   */
  async verify(token: string, now?: number): Promise<VerifiedAccessToken> {
    try {
      if (typeof token !== 'string' || token.length === 0) throw invalidToken('malformed')
      if (token.length > this.#rules.maxTokenLength) throw invalidToken('oversized')
      if (!COMPACT_JWS.test(token)) throw invalidToken('malformed')
      const options = now === undefined ? this.#jose : { ...this.#jose, currentDate: new Date(now) }
      const { payload, protectedHeader } = await jwtVerify(token, this.#resolveKey, options)
      // jose checks `iat` only together with maxTokenAge; a token from the future is refused here.
      const nowSeconds = Math.floor((now ?? Date.now()) / 1000)
      if ((payload.iat as number) > nowSeconds + (this.#rules.issuedAtLeeway ?? this.#rules.clockTolerance)) throw invalidToken('issued_in_future')
      return { auth: toAuthContext(payload), header: protectedHeader }
    } catch (err) {
      throw toInvalidToken(err)
    }
  }

  /** Called by jose with the parsed protected header, after `alg` passed the allow-list. */
  readonly #resolveKey = (header: JWTHeaderParameters, token: FlattenedJWSInput): ReturnType<AccessTokenKeys> => {
    checkTokenHeader(header)
    return this.#keys(header, token)
  }
}
