import { KeyObject, createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type webcrypto } from 'node:crypto'
import { calculateJwkThumbprint } from 'jose'

/** A key pair as node:crypto KeyObjects or WebCrypto CryptoKeys; EC P-256 (ES256). */
export interface DpopKeyPair {
  privateKey: KeyObject | webcrypto.CryptoKey
  /** Derived from the private key when absent. */
  publicKey?: KeyObject | webcrypto.CryptoKey
}

/** `true`: a fresh ES256 key pair for this client's life; or the client's own pair. */
export type DpopOption = true | DpopKeyPair

export interface ProofInput {
  /** The HTTP method of the request the proof is for. */
  method: string
  /** Its URL; query and fragment are left out of `htu` (RFC 9449 §4.2). */
  url: string
  /** Seconds since the epoch. */
  iat: number
  /** At a resource server: the access token, named by its hash in `ath`. */
  accessToken?: string
  nonce?: string
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function toKeyObject(key: KeyObject | webcrypto.CryptoKey): KeyObject {
  return key instanceof KeyObject ? key : KeyObject.from(key)
}

/**
 * DPoP proofs (RFC 9449 §4.2) of one key: ES256 over node:crypto (a proof per request, so no
 * async signing), the public key in `jwk` with only its public members, a random `jti` each time.
 */
export class DpopSigner {
  readonly #privateKey: KeyObject
  readonly #header: string
  readonly #jwk: { kty: string; crv: string; x: string; y: string }
  #jkt: Promise<string> | undefined

  constructor(option: DpopOption) {
    let privateKey: KeyObject
    let publicKey: KeyObject
    if (option === true) {
      const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      privateKey = pair.privateKey
      publicKey = pair.publicKey
    } else {
      if (typeof option !== 'object' || option === null || option.privateKey === undefined) {
        throw new TypeError('token client option "dpop" must be true or { privateKey, publicKey? }')
      }
      privateKey = toKeyObject(option.privateKey)
      if (privateKey.type !== 'private') throw new TypeError('token client option "dpop.privateKey" must be a private key')
      publicKey = option.publicKey === undefined ? createPublicKey(privateKey) : toKeyObject(option.publicKey)
    }
    for (const k of [privateKey, publicKey]) {
      if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new TypeError('token client option "dpop" needs an EC P-256 key pair (ES256)')
      }
    }
    const full = publicKey.export({ format: 'jwk' })
    // Public members only: a proof must never carry `d` (RFC 9449 §4.2).
    this.#jwk = { kty: 'EC', crv: 'P-256', x: full.x as string, y: full.y as string }
    const derived = createPublicKey(privateKey).export({ format: 'jwk' })
    if (derived.x !== this.#jwk.x || derived.y !== this.#jwk.y) throw new TypeError('token client option "dpop": the public key is not the private key\'s')
    this.#privateKey = privateKey
    this.#header = b64json({ typ: 'dpop+jwt', alg: 'ES256', jwk: this.#jwk })
  }

  /** The key's RFC 7638 SHA-256 thumbprint (`cnf.jkt` of the tokens bound to it). */
  thumbprint(): Promise<string> {
    this.#jkt ??= calculateJwkThumbprint(this.#jwk, 'sha256')
    return this.#jkt
  }

  proof(input: ProofInput): string {
    const url = new URL(input.url)
    const payload: Record<string, unknown> = {
      jti: randomBytes(16).toString('base64url'),
      htm: input.method.toUpperCase(),
      htu: `${url.origin}${url.pathname}`,
      iat: input.iat,
    }
    if (input.accessToken !== undefined) payload.ath = createHash('sha256').update(input.accessToken, 'ascii').digest('base64url')
    if (input.nonce !== undefined) payload.nonce = input.nonce
    const data = `${this.#header}.${b64json(payload)}`
    const signature = sign('sha256', Buffer.from(data, 'ascii'), { key: this.#privateKey, dsaEncoding: 'ieee-p1363' })
    return `${data}.${signature.toString('base64url')}`
  }
}

/** Server nonces (RFC 9449 §8, §9) as servers sent them in `DPoP-Nonce`, one per origin. */
export class DpopNonceStore {
  readonly #nonces = new Map<string, string>()

  get(url: string): string | undefined {
    return this.#nonces.get(new URL(url).origin)
  }

  /** Remembers the `DPoP-Nonce` of a response from `url`, if it sent one. */
  update(url: string, headers: Pick<Headers, 'get'>): void {
    const nonce = headers.get('dpop-nonce')
    // RFC 9449 §8.1: nonce = 1*NQCHAR; anything else is ignored rather than echoed.
    if (nonce !== null && /^[\x21\x23-\x5B\x5D-\x7E]{1,512}$/.test(nonce)) this.#nonces.set(new URL(url).origin, nonce)
  }
}
