import { constants, createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'

/**
 * DPoP proofs (RFC 9449 §4.2) for tests, built over node:crypto so that a test can also make
 * what a real client never would: a private key in `jwk`, `alg: none`, a wrong `typ`, a proof of
 * one key signed by another.
 */

export type DpopTestAlgorithm = 'ES256' | 'RS256' | 'PS256' | 'EdDSA' | 'Ed25519'

export interface DpopKey {
  alg: DpopTestAlgorithm
  privateKey: KeyObject
  /** The public JWK as a proof carries it. */
  jwk: Record<string, unknown>
  /** Its RFC 7638 SHA-256 thumbprint, base64url (`cnf.jkt`). */
  jkt: string
}

/** A fresh proof key (ES256 unless told); `rsaBits` only for RSA (default 2048). */
export function makeDpopKey(alg: DpopTestAlgorithm = 'ES256', rsaBits = 2048): DpopKey {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256' || alg === 'PS256'
        ? generateKeyPairSync('rsa', { modulusLength: rsaBits })
        : generateKeyPairSync('ed25519')
  const jwk = pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown>
  const members =
    jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  const jkt = createHash('sha256').update(JSON.stringify(members)).digest('base64url')
  return { alg, privateKey: pair.privateKey, jwk, jkt }
}

export interface DpopProofInput {
  key: DpopKey
  htm: string
  htu: string
  /** Seconds since the epoch. */
  iat: number
  /** Random unless given. */
  jti?: string
  /** The access token to bind (`ath`). */
  accessToken?: string
  nonce?: string
  /** Merged over (or, with `undefined`, removed from) the header. */
  header?: Record<string, unknown>
  /** Merged over (or removed from) the payload. */
  payload?: Record<string, unknown>
  /** Sign with this key instead of `key` (a proof whose jwk is not its signer). */
  signer?: DpopKey
}

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url')
}

function drop(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
}

/** A signed DPoP proof. */
export function dpopProof(input: DpopProofInput): string {
  const { key } = input
  const header = drop({ typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk, ...input.header })
  const payload = drop({
    jti: input.jti ?? randomBytes(16).toString('base64url'),
    htm: input.htm,
    htu: input.htu,
    iat: input.iat,
    ...(input.accessToken === undefined ? {} : { ath: createHash('sha256').update(input.accessToken).digest('base64url') }),
    ...(input.nonce === undefined ? {} : { nonce: input.nonce }),
    ...input.payload,
  })
  const data = Buffer.from(`${b64(header)}.${b64(payload)}`)
  const signer = input.signer ?? key
  let signature: Buffer
  switch (signer.alg) {
    case 'ES256':
      signature = sign('sha256', data, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' })
      break
    case 'RS256':
      signature = sign('sha256', data, signer.privateKey)
      break
    case 'PS256':
      signature = sign('sha256', data, { key: signer.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
      break
    default:
      signature = sign(null, data, signer.privateKey)
  }
  return `${data.toString()}.${signature.toString('base64url')}`
}
