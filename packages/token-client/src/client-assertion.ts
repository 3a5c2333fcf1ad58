import { randomUUID } from 'node:crypto'
import { SignJWT, importJWK, type CryptoKey, type JWK, type KeyObject } from 'jose'

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

export interface PrivateKeyJwtCredentials {
  type: 'private_key_jwt'
  /** A private JWK, or a key already imported (CryptoKey / node KeyObject). */
  privateKey: JWK | CryptoKey | KeyObject
  /** Defaults to the JWK's `kid`. */
  kid?: string
  /** Defaults to the JWK's `alg`, else RS256. */
  alg?: string
}

export interface ClientAssertionInput {
  clientId: string
  /** The assertion's `aud`: the authorization server's issuer identifier (RFC 7523bis). */
  audience: string
  nowSeconds: number
  lifetimeSeconds: number
}

function isJwk(key: PrivateKeyJwtCredentials['privateKey']): key is JWK {
  return typeof key === 'object' && key !== null && typeof (key as { kty?: unknown }).kty === 'string'
}

/**
 * Signs RFC 7523 §3 client assertions: `iss` = `sub` = the client id, `aud`
 * the authorization server, a random `jti` and a short `exp`. The key is
 * imported once; every assertion is new (never reused across retries, so a
 * server that remembers `jti`s does not see a replay).
 */
export class ClientAssertionSigner {
  readonly #credentials: PrivateKeyJwtCredentials
  readonly #alg: string
  readonly #kid: string | undefined
  #key: Promise<CryptoKey | KeyObject | Uint8Array> | undefined

  constructor(credentials: PrivateKeyJwtCredentials) {
    this.#credentials = credentials
    const jwk = isJwk(credentials.privateKey) ? credentials.privateKey : undefined
    if (jwk !== undefined && typeof jwk.d !== 'string') {
      throw new TypeError('token client option "credentials.privateKey" must be a private key (the JWK has no "d")')
    }
    this.#alg = credentials.alg ?? jwk?.alg ?? 'RS256'
    this.#kid = credentials.kid ?? jwk?.kid
  }

  async sign(input: ClientAssertionInput): Promise<string> {
    const key = await this.#importedKey()
    return await new SignJWT({})
      .setProtectedHeader({ alg: this.#alg, typ: 'JWT', ...(this.#kid === undefined ? {} : { kid: this.#kid }) })
      .setIssuer(input.clientId)
      .setSubject(input.clientId)
      .setAudience(input.audience)
      .setJti(randomUUID())
      .setIssuedAt(input.nowSeconds)
      .setExpirationTime(input.nowSeconds + input.lifetimeSeconds)
      .sign(key)
  }

  #importedKey(): Promise<CryptoKey | KeyObject | Uint8Array> {
    if (this.#key === undefined) {
      const { privateKey } = this.#credentials
      this.#key = isJwk(privateKey) ? importJWK(privateKey, this.#alg) : Promise.resolve(privateKey)
      this.#key.catch(() => {
        this.#key = undefined
      })
    }
    return this.#key
  }
}
