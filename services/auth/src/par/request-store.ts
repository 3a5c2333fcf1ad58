import { createHash, randomBytes } from 'node:crypto'
import type { Clock } from '../store/types.js'

/**
 * Pushed authorization requests (RFC 9126): what a client pushed to /par, kept under a random
 * reference until /authorize takes it. The reference has 256 random bits; the store keeps only its
 * SHA-256, so a copy of the store names no usable request_uri (like codes, DESIGN §8).
 *
 * Taking a request is one atomic step that spends it whatever the outcome (RFC 9126 §4: "one-time
 * use"), so a request_uri is good for exactly one authorization, by the client that pushed it.
 */

/**
 * The parameters as the form carried them: a value, or the values of a parameter the request
 * repeated (RFC 8707 `resource` may repeat). The authorization request's own validation decides
 * what a repetition means; the store keeps them as they came.
 */
export type PushedParams = Readonly<Record<string, string | readonly string[]>>

export interface PushedRequest {
  /** The authenticated client that pushed it (RFC 9126 §2.1): the only one that may use it. */
  clientId: string
  params: PushedParams
}

export type TakeOutcome =
  /** The first use, by the pusher: the parameters. The request is spent now. */
  | { status: 'ok'; request: PushedRequest }
  /** Another client named it: refused, and spent all the same (a request_uri seen elsewhere has leaked). */
  | { status: 'other_client' }
  /** Pushed but not used in time (RFC 9126 §4: "An expired request_uri MUST be rejected"). */
  | { status: 'expired' }
  /** Unknown, malformed or already used. */
  | { status: 'not_found' }

export interface PushedRequestStore {
  /** Keeps the request for the store's lifetime; returns its reference (the only copy of it). */
  push(request: PushedRequest): Promise<string>
  /** One atomic step: the request is gone afterwards, whoever asked. */
  take(reference: string, clientId: string): Promise<TakeOutcome>
}

export interface PushedRequestStoreOptions {
  /** How long a pushed request may wait for /authorize (ms): PAR_TTL. */
  lifetimeMs: number
  clock?: Clock
}

/** RFC 9126 §2.2: the request_uri is a URN under this prefix, followed by the reference. */
export const REQUEST_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:'
/** 32 random bytes, base64url. */
export const REFERENCE = /^[A-Za-z0-9_-]{43}$/

export function newReference(): string {
  return randomBytes(32).toString('base64url')
}

export function referenceHash(reference: string): string {
  return createHash('sha256').update(reference).digest('base64url')
}

export function requestUriOf(reference: string): string {
  return REQUEST_URI_PREFIX + reference
}

/** The reference inside a request_uri of ours; null for anything else. */
export function referenceOf(requestUri: string): string | null {
  if (!requestUri.startsWith(REQUEST_URI_PREFIX)) return null
  const reference = requestUri.slice(REQUEST_URI_PREFIX.length)
  return REFERENCE.test(reference) ? reference : null
}

export function storeSettings(options: PushedRequestStoreOptions): { lifetimeMs: number; clock: Clock } {
  const { lifetimeMs } = options
  if (!Number.isSafeInteger(lifetimeMs) || lifetimeMs < 1) throw new TypeError('lifetimeMs must be a positive integer (ms)')
  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning ms')
  return { lifetimeMs, clock }
}

/** What both stores keep under the reference's hash. */
export interface StoredPushedRequest extends PushedRequest {
  /** ms of the injected clock */
  expiresAt: number
}

/** The outcome of taking `stored` (already removed) for `clientId` at `now`. */
export function takeOutcome(stored: StoredPushedRequest | null, clientId: string, now: number): TakeOutcome {
  if (stored === null) return { status: 'not_found' }
  if (now >= stored.expiresAt) return { status: 'expired' }
  if (stored.clientId !== clientId) return { status: 'other_client' }
  return { status: 'ok', request: { clientId: stored.clientId, params: stored.params } }
}

/** In-process pushed requests: the development default; same contract as the Redis store. */
export class MemoryPushedRequestStore implements PushedRequestStore {
  readonly #s: { lifetimeMs: number; clock: Clock }
  readonly #requests = new Map<string, StoredPushedRequest>()

  constructor(options: PushedRequestStoreOptions) {
    this.#s = storeSettings(options)
  }

  async push(request: PushedRequest): Promise<string> {
    const now = this.#s.clock()
    for (const [h, r] of this.#requests) if (now >= r.expiresAt) this.#requests.delete(h)
    const reference = newReference()
    this.#requests.set(referenceHash(reference), { clientId: request.clientId, params: copyParams(request.params), expiresAt: now + this.#s.lifetimeMs })
    return reference
  }

  async take(reference: string, clientId: string): Promise<TakeOutcome> {
    if (typeof reference !== 'string' || !REFERENCE.test(reference)) return { status: 'not_found' }
    const h = referenceHash(reference)
    const stored = this.#requests.get(h) ?? null
    this.#requests.delete(h)
    return takeOutcome(stored, clientId, this.#s.clock())
  }
}

function copyParams(params: PushedParams): PushedParams {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'string' ? v : [...v]]))
}

/** Reads a stored request back; null when it is not what push() wrote. */
export function decodeStored(raw: unknown): StoredPushedRequest | null {
  if (typeof raw !== 'string') return null
  try {
    const r = JSON.parse(raw) as Partial<StoredPushedRequest>
    if (typeof r.clientId !== 'string' || typeof r.expiresAt !== 'number' || typeof r.params !== 'object' || r.params === null || Array.isArray(r.params)) return null
    for (const v of Object.values(r.params)) {
      if (typeof v !== 'string' && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) return null
    }
    return { clientId: r.clientId, params: r.params, expiresAt: r.expiresAt }
  } catch {
    return null
  }
}
