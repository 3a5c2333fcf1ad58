/**
 * A software WebAuthn authenticator for tests that run without a browser: one ES256 credential
 * made with node:crypto, attestation `none`, its responses encoded as @simplewebauthn/browser
 * encodes them (base64url JSON). Every part can be bent (origin, RP ID, flags, counter,
 * challenge, user handle) to build the responses an attacker would send; nothing here decides
 * whether a response is good: that is the server's library.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { isoCBOR } from '@simplewebauthn/server/helpers'

const b64 = (b: Uint8Array | Buffer | string): string => Buffer.from(b).toString('base64url')

export const FLAG_UP = 0x01
export const FLAG_UV = 0x04
export const FLAG_BE = 0x08
export const FLAG_BS = 0x10
const FLAG_AT = 0x40

export interface Bend {
  origin?: string
  rpId?: string
  /** authenticator data flags (default UP|UV) */
  flags?: number
  /** the signature counter to report (default: the next one) */
  counter?: number
  /** clientDataJSON.type */
  type?: string
  /** the user handle to give back (default: the one registered) */
  userHandle?: string | null
  /** the challenge to sign instead of the options' */
  challenge?: string
}

export class SoftwareAuthenticator {
  readonly credentialId = randomBytes(16)
  readonly #privateKey: KeyObject
  readonly #cose: Uint8Array
  #counter = 0
  userHandle: string | undefined

  constructor(readonly origin: string, readonly rpId: string) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    this.#privateKey = privateKey
    const jwk = publicKey.export({ format: 'jwk' })
    this.#cose = isoCBOR.encode(new Map<number, number | Uint8Array>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, new Uint8Array(Buffer.from(jwk.x!, 'base64url'))],
      [-3, new Uint8Array(Buffer.from(jwk.y!, 'base64url'))],
    ]))
  }

  get id(): string {
    return b64(this.credentialId)
  }

  #clientData(type: string, challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }))
  }

  #authData(rpId: string, flags: number, counter: number, attested?: Uint8Array): Buffer {
    const head = Buffer.alloc(37)
    createHash('sha256').update(rpId).digest().copy(head, 0)
    head[32] = flags
    head.writeUInt32BE(counter, 33)
    return attested === undefined ? head : Buffer.concat([head, attested])
  }

  /** The JSON a browser would post after navigator.credentials.create with `options` (generateRegistrationOptions's). */
  register(options: { challenge: string; user: { id: string } }, bend: Bend = {}): string {
    this.userHandle = options.user.id
    const len = Buffer.alloc(2)
    len.writeUInt16BE(this.credentialId.length)
    const attested = Buffer.concat([Buffer.alloc(16), len, this.credentialId, Buffer.from(this.#cose)])
    const authData = this.#authData(bend.rpId ?? this.rpId, (bend.flags ?? FLAG_UP | FLAG_UV) | FLAG_AT, bend.counter ?? 0, attested)
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', new Uint8Array(authData)]]) as never)
    const clientDataJSON = this.#clientData(bend.type ?? 'webauthn.create', bend.challenge ?? options.challenge, bend.origin ?? this.origin)
    return JSON.stringify({
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON: b64(clientDataJSON), attestationObject: b64(attestationObject), transports: ['internal'] },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    })
  }

  /** The JSON a browser would post after navigator.credentials.get with `options`; the counter grows by one unless bent. */
  assert(options: { challenge: string }, bend: Bend = {}): string {
    const counter = bend.counter ?? ++this.#counter
    const authData = this.#authData(bend.rpId ?? this.rpId, bend.flags ?? FLAG_UP | FLAG_UV, counter)
    const clientDataJSON = this.#clientData(bend.type ?? 'webauthn.get', bend.challenge ?? options.challenge, bend.origin ?? this.origin)
    const signature = sign('sha256', Buffer.concat([authData, createHash('sha256').update(clientDataJSON).digest()]), this.#privateKey)
    const handle = bend.userHandle === undefined ? this.userHandle : bend.userHandle
    return JSON.stringify({
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON: b64(clientDataJSON), authenticatorData: b64(authData), signature: b64(signature), ...(handle === null || handle === undefined ? {} : { userHandle: handle }) },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    })
  }
}
