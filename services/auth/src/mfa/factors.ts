import { randomBytes } from 'node:crypto'
import type { Clock } from '../store/types.js'

/**
 * Second factors (DESIGN §10.5): what a user enrolled besides the password.
 *
 *  - `totp`: an authenticator app (RFC 6238). At most one per user. Its shared secret must be
 *    read back to check a code, so it is kept sealed (AES-256-GCM under a key derived from
 *    COOKIE_SECRET, mfa/secret-seal.ts), never in the clear. `lastStep` is the last time step
 *    accepted: a code of that step or an earlier one is refused (RFC 6238 §5.2, no reuse).
 *  - `passkey`: a WebAuthn credential (discoverable). Many per user. The public key and the
 *    signature counter of the last accepted assertion (a counter that does not grow is a cloned
 *    authenticator or a replay, WebAuthn §6.1.1).
 *  - `recovery`: one set of single-use recovery codes per user, kept as SHA-256 digests; using
 *    one removes its digest.
 *
 * Outcomes are values; stores throw only StoreUnavailable. Every "use" is one atomic step in the
 * store, so two replicas (or two tabs) can never both accept the same code, step or counter.
 */
export type FactorKind = 'totp' | 'passkey' | 'recovery'

interface FactorBase {
  /** Random, url-safe; what the account page and the CLI name a factor by. */
  id: string
  userId: string
  kind: FactorKind
  /** What the user calls it ("Authenticator app", "Passkey on Chrome on macOS"). */
  label: string
  /** ms epoch */
  createdAt: number
  /** ms epoch of the last accepted use */
  lastUsedAt?: number
}

export interface TotpFactor extends FactorBase {
  kind: 'totp'
  /** The sealed base32 secret (mfa/secret-seal.ts). */
  sealedSecret: string
  /** The last accepted time step (RFC 6238 T); -1 before the first. */
  lastStep: number
}

export interface PasskeyFactor extends FactorBase {
  kind: 'passkey'
  /** base64url credential id (unique across users). */
  credentialId: string
  /** base64url COSE public key. */
  publicKey: string
  /** The signature counter of the last accepted assertion (WebAuthn §6.1.1). */
  counter: number
  /** AuthenticatorTransport hints given at registration. */
  transports: string[]
}

export interface RecoveryCodesFactor extends FactorBase {
  kind: 'recovery'
  /** base64url SHA-256 of each unused code (codes are high-entropy: no KDF needed). */
  codeHashes: string[]
  /** How many codes the set had when made. */
  total: number
}

export type Factor = TotpFactor | PasskeyFactor | RecoveryCodesFactor

/** `exists`: a second TOTP, a second recovery set (use replaceRecoveryCodes) or a credential id already taken. */
export type AddFactorResult = 'added' | 'exists'

export type PasskeyUse = { status: 'ok'; factor: PasskeyFactor } | { status: 'replayed' } | { status: 'not_found' }

export interface FactorStore {
  /** The user's factors, oldest first (by createdAt; ties in the order added). */
  list(userId: string): Promise<Factor[]>
  add(factor: Factor): Promise<AddFactorResult>
  /** Replaces (or creates) the user's recovery code set in one step. */
  replaceRecoveryCodes(factor: RecoveryCodesFactor): Promise<void>
  /** Removes one of the user's factors; null when the user has no such factor. */
  remove(userId: string, factorId: string): Promise<Factor | null>
  /** Removes every factor of the user (operator reset, user deleted); returns those removed. */
  removeAll(userId: string): Promise<Factor[]>
  /** The passkey with this credential id, whoever holds it (username-less sign-in). */
  findPasskey(credentialId: string): Promise<PasskeyFactor | null>
  /**
   * Accepts TOTP step `step` of the user's factor only if it is later than the last accepted
   * one, and records it (with lastUsedAt = at); false for a reused or earlier step or no factor.
   */
  useTotpStep(userId: string, factorId: string, step: number, at: number): Promise<boolean>
  /**
   * Accepts an assertion's signature counter: `ok` (and records it) when it is greater than the
   * stored one, or both are 0 (authenticators without counters); `replayed` otherwise.
   */
  usePasskey(credentialId: string, counter: number, at: number): Promise<PasskeyUse>
  /** Spends a recovery code by its digest: the codes left, or null when it is not one of the user's unused codes. */
  useRecoveryCode(userId: string, codeHash: string, at: number): Promise<number | null>
}

/** What a factor id looks like: url-safe, 1 to 64 characters (newFactorId makes 22). Every store refuses another with a TypeError. */
const FACTOR_ID = /^[A-Za-z0-9_-]{1,64}$/

export function isFactorId(value: unknown): value is string {
  return typeof value === 'string' && FACTOR_ID.test(value)
}

/** A new factor id: 128 random bits, base64url. */
export function newFactorId(): string {
  return randomBytes(16).toString('base64url')
}

/**
 * A TOTP step or signature counter a store accepts is a whole number below 10^14: the most Redis's
 * cjson writes back exactly (14 significant digits). Real ones are far below: a WebAuthn counter is
 * 32-bit, a TOTP step of 30 s is about 6·10^7. Anything else is refused, by every store alike.
 */
export const FACTOR_NUMBER_LIMIT = 1e14

export function isFactorNumber(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n < FACTOR_NUMBER_LIMIT
}

/**
 * Text (a label) as every store keeps it: a lone UTF-16 surrogate or a NUL (which neither PostgreSQL's
 * jsonb nor Redis's cjson accepts) becomes U+FFFD, so a pasted label is never a 503.
 */
export function storedText(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\u0000/g, '\ufffd')
}

/** The user's factors in list order: by createdAt, ties in the order they were added (a stable sort). */
export function inListOrder<T extends Factor>(factors: readonly T[]): T[] {
  return [...factors].sort((a, b) => a.createdAt - b.createdAt)
}

/** Every factor a user holds at most once. */
export function isSingleton(kind: FactorKind): boolean {
  return kind !== 'passkey'
}

/** A deep copy, so nothing outside a memory store holds its records. */
function copy<T extends Factor>(f: T): T {
  return structuredClone(f)
}

/** In-process factors: the development default; same contract as the Redis and PostgreSQL stores. */
export class MemoryFactorStore implements FactorStore {
  readonly #byUser = new Map<string, Factor[]>()
  /** credential id → the passkey */
  readonly #passkeys = new Map<string, PasskeyFactor>()

  constructor(_options: { clock?: Clock } = {}) {}

  async list(userId: string): Promise<Factor[]> {
    return inListOrder(this.#byUser.get(userId) ?? []).map(copy)
  }

  async add(factor: Factor): Promise<AddFactorResult> {
    if (!isFactorId(factor.id)) throw new TypeError('invalid factor id')
    const held = this.#byUser.get(factor.userId) ?? []
    if (isSingleton(factor.kind) && held.some((f) => f.kind === factor.kind)) return 'exists'
    if (held.some((f) => f.id === factor.id)) return 'exists'
    if (factor.kind === 'passkey' && this.#passkeys.has(factor.credentialId)) return 'exists'
    const stored = { ...copy(factor), label: storedText(factor.label) }
    this.#byUser.set(factor.userId, [...held, stored])
    if (stored.kind === 'passkey') this.#passkeys.set(stored.credentialId, stored)
    return 'added'
  }

  async replaceRecoveryCodes(factor: RecoveryCodesFactor): Promise<void> {
    if (!isFactorId(factor.id)) throw new TypeError('invalid factor id')
    const held = (this.#byUser.get(factor.userId) ?? []).filter((f) => f.kind !== 'recovery')
    this.#byUser.set(factor.userId, [...held, { ...copy(factor), label: storedText(factor.label) }])
  }

  async remove(userId: string, factorId: string): Promise<Factor | null> {
    const held = this.#byUser.get(userId) ?? []
    const found = held.find((f) => f.id === factorId)
    if (found === undefined) return null
    this.#set(userId, held.filter((f) => f !== found))
    if (found.kind === 'passkey') this.#passkeys.delete(found.credentialId)
    return copy(found)
  }

  async removeAll(userId: string): Promise<Factor[]> {
    const held = this.#byUser.get(userId) ?? []
    this.#byUser.delete(userId)
    for (const f of held) if (f.kind === 'passkey') this.#passkeys.delete(f.credentialId)
    return inListOrder(held).map(copy)
  }

  async findPasskey(credentialId: string): Promise<PasskeyFactor | null> {
    const f = this.#passkeys.get(credentialId)
    return f === undefined ? null : copy(f)
  }

  async useTotpStep(userId: string, factorId: string, step: number, at: number): Promise<boolean> {
    const f = (this.#byUser.get(userId) ?? []).find((x) => x.id === factorId)
    if (f === undefined || f.kind !== 'totp' || !isFactorNumber(step) || step <= f.lastStep) return false
    f.lastStep = step
    f.lastUsedAt = at
    return true
  }

  async usePasskey(credentialId: string, counter: number, at: number): Promise<PasskeyUse> {
    const f = this.#passkeys.get(credentialId)
    if (f === undefined) return { status: 'not_found' }
    if (!isFactorNumber(counter)) return { status: 'replayed' }
    if (!(counter > f.counter || (counter === 0 && f.counter === 0))) return { status: 'replayed' }
    f.counter = counter
    f.lastUsedAt = at
    return { status: 'ok', factor: copy(f) }
  }

  async useRecoveryCode(userId: string, codeHash: string, at: number): Promise<number | null> {
    const f = (this.#byUser.get(userId) ?? []).find((x): x is RecoveryCodesFactor => x.kind === 'recovery')
    if (f === undefined) return null
    const i = f.codeHashes.indexOf(codeHash)
    if (i < 0) return null
    f.codeHashes.splice(i, 1)
    f.lastUsedAt = at
    return f.codeHashes.length
  }

  #set(userId: string, factors: Factor[]): void {
    if (factors.length === 0) this.#byUser.delete(userId)
    else this.#byUser.set(userId, factors)
  }
}
