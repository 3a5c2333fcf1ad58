import { isOAuthError, type OAuthError } from '@gatehouse/service-kit'
import { jwtVerify, type CryptoKey, type FlattenedJWSInput, type JWTHeaderParameters, type JWTVerifyOptions, type KeyObject } from 'jose'
import { toAuthContext, type AuthContext } from './auth-context.js'
import { compactDots, jsonObjectSegment, normalizeTyp, type DotPositions } from './compact-jws.js'
import { invalidToken, type InvalidTokenReason } from './errors.js'
import type { JwsVerifyKey } from './jws-key.js'

/**
 * The one rulebook for Gatehouse access tokens (RFC 9068, DESIGN §4), free of
 * any web framework and of where the keys come from: the `Verifier` runs it
 * with the remote JWKS, the auth service with its own in-process key ring.
 */

/** Where the verification key comes from: jose's `createLocalJWKSet`/`createRemoteJWKSet`, or any lookup by header. */
export type AccessTokenKeys = (header: JWTHeaderParameters, token: FlattenedJWSInput) => CryptoKey | KeyObject | Uint8Array | Promise<CryptoKey | KeyObject | Uint8Array>

/**
 * The fast path's keys: a synchronous lookup by `kid` and `alg` of the key `AccessTokenKeys` would
 * give for that header, as a `node:crypto` key. Undefined sends the token down jose's route, which
 * asks `AccessTokenKeys` (an unknown kid's refetch, a 503 when no key can be had: all there).
 */
export type NodeKeyLookup = (kid: string, alg: string) => JwsVerifyKey | undefined

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

/** The largest `Date` (ECMA-262 §21.4.1.22): jose refuses a current time beyond it. */
const MAX_TIME_MS = 8.64e15

/**
 * Protected headers the fast path parsed, by their exact encoded text: an issuer's tokens share a
 * handful (one per signing key), so most requests skip decoding and parsing it (about 2 µs).
 * Bounded: emptied when full, so a flood of made-up headers costs only the parse it would anyway.
 */
const HEADER_CACHE_ENTRIES = 16

/** RFC 9068 §4's `typ`, as `normalizeTyp` spells it. */
const AT_JWT = normalizeTyp('at+jwt')

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
 *
 * Two routes, one verdict. Given `nodeKeys`, a token whose key it holds is checked on a fast
 * path: parsed here, its signature checked synchronously with `node:crypto`, and jose's own
 * rules (jose 6's `jwtVerify` with the options below) applied in jose's order, so that the
 * reason of a refusal is jose's too (`test/fast-path-differential.test.ts` holds the two routes
 * to the same verdict on generated tokens). Everything else takes jose's route: no `nodeKeys`, a
 * kid or alg it does not hold (the unknown-kid refetch lives behind `keys`), a `crit` header
 * (jose's extension rules decide its reason), a clock jose would refuse.
 */
export class AccessTokenRulebook {
  readonly #rules: AccessTokenRules
  readonly #keys: AccessTokenKeys
  readonly #jose: JWTVerifyOptions
  readonly #nodeKeys: NodeKeyLookup | undefined
  readonly #algorithms: ReadonlySet<string>
  readonly #issuedAtLeeway: number
  /** The fast path's parsed headers (frozen: shared by every token that carries one). */
  readonly #headers = new Map<string, Readonly<Record<string, unknown>>>()

  constructor(keys: AccessTokenKeys, rules: AccessTokenRules, nodeKeys?: NodeKeyLookup) {
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
    this.#algorithms = new Set(rules.algorithms)
    this.#issuedAtLeeway = rules.issuedAtLeeway ?? rules.clockTolerance
    // Options jose refuses (a TypeError for every token) are left to jose to refuse.
    const sane =
      typeof rules.clockTolerance === 'number' &&
      Number.isFinite(rules.clockTolerance) &&
      rules.clockTolerance >= 0 &&
      typeof rules.issuer === 'string' &&
      rules.algorithms.every((alg) => typeof alg === 'string')
    this.#nodeKeys = sane ? nodeKeys : undefined
  }

  /**
   * Verifies `token` at `now` (ms; omitted: the real clock, which on jose's
   * route spares a fresh options object per call, about 10 µs, measured).
   */
  async verify(token: string, now?: number): Promise<VerifiedAccessToken> {
    try {
      if (typeof token !== 'string' || token.length === 0) throw invalidToken('malformed')
      if (token.length > this.#rules.maxTokenLength) throw invalidToken('oversized')
      // Compact JWS: three canonical base64url segments; anything else (padding, whitespace, a
      // fourth segment, `+` or `/`, spare bits) is refused before a segment is decoded.
      const dots = compactDots(token)
      if (dots === undefined) throw invalidToken('malformed')
      if (this.#nodeKeys !== undefined) {
        const verified = this.#verifyDirect(token, dots, this.#nodeKeys, now ?? Date.now())
        if (verified !== undefined) return verified
      }
      const options = now === undefined ? this.#jose : { ...this.#jose, currentDate: new Date(now) }
      const { payload, protectedHeader } = await jwtVerify(token, this.#resolveKey, options)
      // jose checks `iat` only together with maxTokenAge; a token from the future is refused here.
      const nowSeconds = Math.floor((now ?? Date.now()) / 1000)
      if ((payload.iat as number) > nowSeconds + this.#issuedAtLeeway) throw invalidToken('issued_in_future')
      return { auth: toAuthContext(payload), header: protectedHeader }
    } catch (err) {
      throw toInvalidToken(err)
    }
  }

  /**
   * The fast path: jose's `verifyCompact` and `validateClaimsSet` for this rulebook's options,
   * step for step, with the signature checked by `node:crypto`. Returns undefined, having
   * decided nothing, for a token it leaves to jose's route; throws the refusal jose's route
   * would throw for the others.
   */
  #verifyDirect(token: string, [dot1, dot2]: DotPositions, nodeKeys: NodeKeyLookup, nowMs: number): VerifiedAccessToken | undefined {
    const encodedHeader = token.slice(0, dot1)
    let header = this.#headers.get(encodedHeader)
    if (header === undefined) {
      // jose: "JWS Protected Header is invalid" (ERR_JWS_INVALID).
      const parsed = jsonObjectSegment(token, 0, dot1)
      if (parsed === undefined) throw invalidToken('malformed')
      if (this.#headers.size >= HEADER_CACHE_ENTRIES) this.#headers.clear()
      header = Object.freeze(parsed)
      this.#headers.set(encodedHeader, header)
    }
    // jose's extension rules (RFC 7515 §4.1.11) and b64 (RFC 7797) decide between malformed and
    // forbidden_header: rare, and left to jose.
    if (header.crit !== undefined) return undefined
    const { alg } = header
    if (typeof alg !== 'string' || alg.length === 0) throw invalidToken('malformed')
    if (!this.#algorithms.has(alg)) throw invalidToken('alg_not_allowed')
    // Where jose calls the key resolver: the header rules, then the key.
    const kid = checkTokenHeader(header as JWTHeaderParameters)
    const key = nodeKeys(kid, alg)
    if (key === undefined || key.alg !== alg) return undefined
    // jose reads the time as a Date (whole milliseconds) and refuses one beyond the Date range.
    if (!(Math.abs(nowMs) <= MAX_TIME_MS)) return undefined
    const now = Math.floor(Math.trunc(nowMs) / 1000)

    const signingInput = Buffer.from(token.slice(0, dot2), 'latin1')
    const signature = Buffer.from(token.slice(dot2 + 1), 'base64url')
    if (!key.verify(signingInput, signature)) throw invalidToken('bad_signature')

    // jose: "JWT Claims Set must be a top-level JSON object" (ERR_JWT_INVALID).
    const claims = jsonObjectSegment(token, dot1 + 1, dot2)
    if (claims === undefined) throw invalidToken('malformed')
    // validateClaimsSet, in its order, for { typ, requiredClaims, issuer, audience, clockTolerance }.
    if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== AT_JWT) throw invalidToken('wrong_typ')
    for (const claim of REQUIRED_CLAIMS) if (!Object.hasOwn(claims, claim)) throw invalidToken('missing_claim')
    if (claims.iss !== this.#rules.issuer) throw invalidToken('wrong_issuer')
    const audience = this.#rules.audience
    if (audience !== ANY_AUDIENCE) {
      const { aud } = claims
      if (!(typeof aud === 'string' ? aud === audience : Array.isArray(aud) && aud.includes(audience))) throw invalidToken('wrong_audience')
    }
    const tolerance = this.#rules.clockTolerance
    const { iat, nbf, exp } = claims
    if (iat !== undefined && typeof iat !== 'number') throw invalidToken('invalid_claim')
    // jose names the claim `nbf` for a non-number too, which toInvalidToken reads as not_yet_valid.
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) throw invalidToken('not_yet_valid')
    if (exp !== undefined && typeof exp !== 'number') throw invalidToken('invalid_claim')
    if (exp !== undefined && exp <= now - tolerance) throw invalidToken('expired')

    // The rulebook's own rule after jose's (verify above), on its own reading of the time.
    if ((iat as number) > Math.floor(nowMs / 1000) + this.#issuedAtLeeway) throw invalidToken('issued_in_future')
    return { auth: toAuthContext(claims), header: header as JWTHeaderParameters }
  }

  /** Called by jose with the parsed protected header, after `alg` passed the allow-list. */
  readonly #resolveKey = (header: JWTHeaderParameters, token: FlattenedJWSInput): ReturnType<AccessTokenKeys> => {
    checkTokenHeader(header)
    return this.#keys(header, token)
  }
}
