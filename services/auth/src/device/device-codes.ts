import { createHash, randomBytes, randomInt } from 'node:crypto'
import type { Clock } from '../store/types.js'

/**
 * The device authorization grant's requests (RFC 8628): what a device started at
 * /device_authorization, found by the user through its user code on the verification page, and
 * polled for by the device with its device code at /token.
 *
 * - The device code is 256 random bits, kept only as its SHA-256 (DESIGN §8: codes stored as
 *   hashes); it is the bearer secret of the polling device.
 * - The user code is 8 characters from `BCDFGHJKLMNPQRSTVWXZ` (RFC 8628 §6.1: no vowels, so no
 *   words, and no digits to confuse with letters): 20^8 ≈ 2^34.6 values, shown as `XXXX-XXXX`.
 *   Guessing one is rate limited on the page (routes/device.ts), and a code lives DEVICE_CODE_TTL.
 * - Every change of state is one atomic step (a Lua script in Redis, a synchronous section here):
 *   a decision only moves a pending request; a poll checks the client, the expiry, the decision
 *   and the polling rate together, and consumes an approved request, so it yields tokens once.
 *
 * Outcomes are values; implementations throw only StoreUnavailable.
 */
export const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ'
export const USER_CODE_LENGTH = 8
/** RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent requests". */
export const SLOW_DOWN_STEP_SECONDS = 5

export type DeviceStatus = 'pending' | 'approved' | 'denied'

export interface DeviceRequest {
  /** A random handle of this request (not its secret): binds the user's confirmation to this very request. */
  id: string
  clientId: string
  scope: string
  /** Normalised: 8 letters of USER_CODE_ALPHABET, no dash. */
  userCode: string
  status: DeviceStatus
  /** The approving (or denying) user. */
  userId?: string
  /** When the approving user signed in, seconds (the tokens' `auth_time`). */
  authTime?: number
  /** ms epoch */
  createdAt: number
  /** ms epoch: polls from then on are `expired_token`. */
  expiresAt: number
  /** The current least wait between polls, seconds (raised by every `slow_down`). */
  interval: number
  /** ms epoch of the last poll. */
  lastPollAt?: number
}

export type Decision = { approve: true; userId: string; authTime: number } | { approve: false; userId: string }

export type DecideOutcome = 'approved' | 'denied' | 'not_found' | 'expired' | 'decided'

export type PollOutcome =
  | { status: 'pending' }
  | { status: 'slow_down'; interval: number }
  | { status: 'denied' }
  | { status: 'expired' }
  /** Unknown, already used, or dropped after its expiry. */
  | { status: 'not_found' }
  /** The request of another client: nothing changed. */
  | { status: 'wrong_client' }
  /** Approved, and now consumed: a second poll is `not_found`. */
  | { status: 'approved'; request: DeviceRequest }

export interface DeviceCodeStore {
  /** A new pending request; the device code is returned once and never stored. */
  start(input: { clientId: string; scope: string }): Promise<{ deviceCode: string; request: DeviceRequest }>
  /** The pending, unexpired request with this normalised user code, else null. */
  findByUserCode(userCode: string): Promise<DeviceRequest | null>
  /** The user's answer to the request `id` shown under `userCode`: only a pending, unexpired request changes. */
  decide(userCode: string, id: string, decision: Decision): Promise<DecideOutcome>
  /** A poll by `clientId` with `deviceCode` (RFC 8628 §3.4, §3.5). */
  poll(deviceCode: string, clientId: string): Promise<PollOutcome>
}

export interface DeviceCodeStoreOptions {
  /** DEVICE_CODE_TTL, ms. */
  ttlMs: number
  /** DEVICE_POLL_INTERVAL, seconds. */
  intervalSeconds: number
  clock?: Clock
}

/**
 * How long a request is kept after it expired, so that its device hears `expired_token` (RFC 8628
 * §3.5) rather than `invalid_grant`: as long again as it lived. Memory stays bounded by twice the
 * requests of one DEVICE_CODE_TTL.
 */
export function retentionMs(ttlMs: number): number {
  return 2 * ttlMs
}

export function newDeviceCode(): string {
  return randomBytes(32).toString('base64url')
}

export function deviceCodeHash(deviceCode: string): string {
  return createHash('sha256').update(deviceCode).digest('base64url')
}

/** What a device code looks like (43 base64url characters); anything else is unknown without a lookup. */
export function isDeviceCode(value: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(value)
}

/** 8 characters of USER_CODE_ALPHABET, each uniform (randomInt has no modulo bias). */
export function newUserCode(): string {
  let code = ''
  for (let i = 0; i < USER_CODE_LENGTH; i++) code += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]
  return code
}

/** `BCDFGHJK` → `BCDF-GHJK` (RFC 8628 §6.1: a separator makes it easier to read and type). */
export function formatUserCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`
}

/**
 * What the user typed, normalised (RFC 8628 §6.1: case-insensitive, dashes and other punctuation
 * the user may have typed dropped): the user code, or null when it cannot be one.
 */
export function normalizeUserCode(input: string): string | null {
  if (input.length > 64) return null
  const code = input.toUpperCase().replace(/[\s-]/g, '')
  if (code.length !== USER_CODE_LENGTH) return null
  for (const c of code) if (!USER_CODE_ALPHABET.includes(c)) return null
  return code
}

export function newRequestId(): string {
  return randomBytes(16).toString('base64url')
}

/** The poll rules on a request (memory store; the Lua script of redis-device-codes.ts says the same). */
export function pollStep(r: DeviceRequest, clientId: string, now: number): PollOutcome {
  if (r.clientId !== clientId) return { status: 'wrong_client' }
  if (now >= r.expiresAt) return { status: 'expired' }
  if (r.status === 'denied') return { status: 'denied' }
  if (r.status === 'approved') return { status: 'approved', request: { ...r } }
  // §3.5 slow_down is "a variant of authorization_pending": only a pending request is throttled.
  if (r.lastPollAt !== undefined && now - r.lastPollAt < r.interval * 1000) {
    r.interval += SLOW_DOWN_STEP_SECONDS
    r.lastPollAt = now
    return { status: 'slow_down', interval: r.interval }
  }
  r.lastPollAt = now
  return { status: 'pending' }
}

/** In-process requests (development, single replica). */
export class MemoryDeviceCodeStore implements DeviceCodeStore {
  readonly #byHash = new Map<string, DeviceRequest>()
  readonly #byUserCode = new Map<string, string>()
  readonly #ttlMs: number
  readonly #interval: number
  readonly #clock: Clock
  #lastSweep = 0

  constructor(options: DeviceCodeStoreOptions) {
    checkOptions(options)
    this.#ttlMs = options.ttlMs
    this.#interval = options.intervalSeconds
    this.#clock = options.clock ?? Date.now
  }

  async start(input: { clientId: string; scope: string }): Promise<{ deviceCode: string; request: DeviceRequest }> {
    const now = this.#clock()
    this.#sweep(now)
    const deviceCode = newDeviceCode()
    const hash = deviceCodeHash(deviceCode)
    let userCode = newUserCode()
    while (this.#live(userCode, now)) userCode = newUserCode()
    const request: DeviceRequest = { id: newRequestId(), clientId: input.clientId, scope: input.scope, userCode, status: 'pending', createdAt: now, expiresAt: now + this.#ttlMs, interval: this.#interval }
    this.#byHash.set(hash, request)
    this.#byUserCode.set(userCode, hash)
    return { deviceCode, request: { ...request } }
  }

  async findByUserCode(userCode: string): Promise<DeviceRequest | null> {
    const r = this.#pending(userCode, this.#clock())
    return r === null ? null : { ...r }
  }

  async decide(userCode: string, id: string, decision: Decision): Promise<DecideOutcome> {
    const hash = this.#byUserCode.get(userCode)
    const r = hash === undefined ? undefined : this.#byHash.get(hash)
    if (r === undefined || r.id !== id || r.userCode !== userCode) return 'not_found'
    if (this.#clock() >= r.expiresAt) return 'expired'
    if (r.status !== 'pending') return 'decided'
    r.status = decision.approve ? 'approved' : 'denied'
    r.userId = decision.userId
    if (decision.approve) r.authTime = decision.authTime
    return r.status
  }

  async poll(deviceCode: string, clientId: string): Promise<PollOutcome> {
    const now = this.#clock()
    const hash = deviceCodeHash(deviceCode)
    const r = this.#byHash.get(hash)
    if (r === undefined || now >= r.createdAt + retentionMs(this.#ttlMs)) return { status: 'not_found' }
    const outcome = pollStep(r, clientId, now)
    if (outcome.status === 'approved') {
      this.#byHash.delete(hash)
      if (this.#byUserCode.get(r.userCode) === hash) this.#byUserCode.delete(r.userCode)
    }
    return outcome
  }

  #pending(userCode: string, now: number): DeviceRequest | null {
    const hash = this.#byUserCode.get(userCode)
    const r = hash === undefined ? undefined : this.#byHash.get(hash)
    return r !== undefined && r.status === 'pending' && now < r.expiresAt ? r : null
  }

  #live(userCode: string, now: number): boolean {
    const hash = this.#byUserCode.get(userCode)
    const r = hash === undefined ? undefined : this.#byHash.get(hash)
    return r !== undefined && now < r.expiresAt
  }

  /** Drops what is past its retention, at most once a minute: memory follows the live requests. */
  #sweep(now: number): void {
    if (now - this.#lastSweep < 60_000) return
    this.#lastSweep = now
    for (const [hash, r] of this.#byHash) {
      if (now >= r.createdAt + retentionMs(this.#ttlMs)) this.#byHash.delete(hash)
    }
    for (const [code, hash] of this.#byUserCode) {
      const r = this.#byHash.get(hash)
      if (r === undefined || now >= r.expiresAt) this.#byUserCode.delete(code)
    }
  }

  /** Requests held (for tests of the memory bound). */
  get size(): number {
    return this.#byHash.size
  }
}

export function checkOptions(options: DeviceCodeStoreOptions): void {
  if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0) throw new TypeError('device code ttlMs must be a positive integer')
  if (!Number.isSafeInteger(options.intervalSeconds) || options.intervalSeconds <= 0) throw new TypeError('device poll intervalSeconds must be a positive integer')
}
