import { constants, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto'

/**
 * A public key ready to check one JWS algorithm synchronously with `node:crypto` (RFC 7518 §3),
 * the fast path of the access-token rulebook: about twice the rate of WebCrypto's asynchronous
 * `subtle.verify` (jose's route), which hands every check to libuv's pool and back.
 *
 * Built only by `JwsVerifyKey.of`, which refuses a key that does not fit the algorithm (the key
 * type, the curve) or an RSA key under 2048 bits: exactly the keys for which jose would throw
 * rather than verify, so that a `JwsVerifyKey` never decides something jose would not.
 */
export class JwsVerifyKey {
  /** The algorithm this key checks; the same key object may back several `JwsVerifyKey`s. */
  readonly alg: string
  readonly #check: (data: Buffer, signature: Buffer) => boolean

  private constructor(alg: string, check: (data: Buffer, signature: Buffer) => boolean) {
    this.alg = alg
    this.#check = check
  }

  /**
   * `key` prepared for `alg`, or undefined when it cannot serve it (not a public key, the wrong
   * type or curve, an RSA modulus under 2048 bits, an algorithm this class does not know).
   */
  static of(key: KeyObject, alg: string): JwsVerifyKey | undefined {
    if (key.type !== 'public') return undefined
    const type = key.asymmetricKeyType
    const details = key.asymmetricKeyDetails ?? {}
    switch (alg) {
      case 'RS256':
      case 'RS384':
      case 'RS512':
      case 'PS256':
      case 'PS384':
      case 'PS512': {
        if (type !== 'rsa' || details.modulusLength === undefined || details.modulusLength < 2048) return undefined
        const hash = `sha${alg.slice(2)}`
        if (alg.startsWith('RS')) return new JwsVerifyKey(alg, (data, sig) => verify(hash, data, key, sig))
        // RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash.
        const pss = { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 }
        return new JwsVerifyKey(alg, (data, sig) => verify(hash, data, pss, sig))
      }
      case 'ES256':
      case 'ES384':
      case 'ES512': {
        const curve = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[alg]
        if (type !== 'ec' || details.namedCurve !== curve) return undefined
        // RFC 7518 §3.4: the signature is R || S, not DER.
        const ecdsa = { key, dsaEncoding: 'ieee-p1363' as const }
        const hash = `sha${alg.slice(2)}`
        return new JwsVerifyKey(alg, (data, sig) => verify(hash, data, ecdsa, sig))
      }
      case 'EdDSA':
      case 'Ed25519':
        if (type !== 'ed25519') return undefined
        return new JwsVerifyKey(alg, (data, sig) => verify(null, data, key, sig))
      default:
        return undefined
    }
  }

  /** Imports a public JWK once (a private member is never passed here) for `alg`; undefined when it cannot serve it. */
  static fromJwk(jwk: JsonWebKey, alg: string): JwsVerifyKey | undefined {
    let key: KeyObject
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' })
    } catch {
      return undefined
    }
    return JwsVerifyKey.of(key, alg)
  }

  /**
   * Whether `signature` is this key's over `signingInput` (ASCII `header.payload`). Never throws:
   * a signature of the wrong length or shape is simply not a valid one, as WebCrypto answers.
   */
  verify(signingInput: Buffer, signature: Buffer): boolean {
    try {
      return this.#check(signingInput, signature)
    } catch {
      return false
    }
  }
}
