import type { JWK } from 'jose'
import type { AuthConfig } from '../config.js'
import { generateRsaJwkAsync, kidOf, type KeyMeta, type KeySetDocument, type LoadedKeySet } from './signing-keys.js'

/**
 * Signing-key rotation without failed requests (DESIGN §7), as pure steps on a
 * key set document. The file and Redis key stores, the CLI and the automatic
 * rotation all apply these same steps, so the safety rules live in one place:
 *
 *  1. a new key is published (in /jwks.json on every replica) for longer than
 *     any verifier caches the key set before any replica signs with it;
 *  2. an activation is scheduled a reload interval ahead, so every replica has
 *     read it by then and all switch at the same instant;
 *  3. a superseded key stays published until every token it signed has expired.
 *
 * State is derived from times, never stored: a key with no `activate_at` (or
 * one in the future) is `next`; the key with the latest `activate_at` not in
 * the future is `active`; an older activated key is `retiring` from the moment
 * its successor activated. All times here are seconds since the epoch.
 */
export interface KeyPolicy {
  /** A new key may sign this long after it was published: JWKS_MAX_AGE + KEYS_RELOAD_INTERVAL + KEY_ROTATION_MARGIN. */
  publishDelay: number
  /** An activation is scheduled this far ahead, so every replica has re-read the set (KEYS_RELOAD_INTERVAL). */
  activationDelay: number
  /** A superseded key stays published this long: the longest token lifetime + KEYS_RELOAD_INTERVAL + KEY_ROTATION_MARGIN. */
  retireDelay: number
  /** Automatic rotation period (KEY_ROTATION_INTERVAL); 0 = manual. */
  rotationInterval: number
}

/**
 * The policy a configuration implies. Access and ID tokens share
 * ACCESS_TOKEN_TTL, the longest lifetime of anything signed.
 */
export function keyPolicy(config: Pick<AuthConfig, 'jwksMaxAge' | 'keysReloadInterval' | 'keyRotationMargin' | 'keyRotationInterval' | 'accessTokenTtl'>): KeyPolicy {
  return {
    publishDelay: config.jwksMaxAge + config.keysReloadInterval + config.keyRotationMargin,
    activationDelay: config.keysReloadInterval,
    retireDelay: config.accessTokenTtl + config.keysReloadInterval + config.keyRotationMargin,
    rotationInterval: config.keyRotationInterval,
  }
}

export type KeyState = 'next' | 'active' | 'retiring'

export interface KeyStatus {
  kid: string
  state: KeyState
  publishedAt: number | null
  /** When it starts or started signing (null: not scheduled; -Infinity never shown: 0 = "since before the schedule"). */
  activateAt: number | null
  /** `next`: the earliest time it may be activated without --force. */
  activateAfter: number | null
  /** `retiring`: when its successor took over. */
  supersededAt: number | null
  /** `retiring`: when it may be removed without --force (every token it signed has expired). */
  removeAfter: number | null
}

export type KeyLifecycleErrorCode = 'not_found' | 'conflict' | 'too_early'

/** A step that the rules refuse; `code` tells the CLI how to answer. */
export class KeyLifecycleError extends Error {
  constructor(
    readonly code: KeyLifecycleErrorCode,
    message: string,
  ) {
    super(message)
    this.name = 'KeyLifecycleError'
  }
}

/** What a step did, as an audit event (`event` plus identifiers, never key material). */
export interface KeyEvent {
  event: 'keys.next_added' | 'keys.activated' | 'keys.retired'
  kid: string
  [field: string]: unknown
}

export interface KeyChange {
  doc: KeySetDocument
  events: KeyEvent[]
}

const sec = (ms: number): number => ms / 1000

function activationOf(set: LoadedKeySet, kid: string): number | undefined {
  return set.activations.get(kid)
}

/** When the key that activated at `at` was superseded: the next activation after it, if any. */
function successorActivation(set: LoadedKeySet, at: number): number | null {
  let next: number | null = null
  for (const a of set.activations.values()) if (a > at && (next === null || a < next)) next = a
  return next
}

export function describeKeys(set: LoadedKeySet, nowMs: number, policy: KeyPolicy): KeyStatus[] {
  const now = sec(nowMs)
  return set.keys.map((k) => {
    const meta = set.meta.get(k.kid)
    const at = activationOf(set, k.kid)
    const publishedAt = meta?.published_at ?? null
    const base = { kid: k.kid, publishedAt, activateAt: at === undefined ? null : Math.max(at, 0), activateAfter: null, supersededAt: null, removeAfter: null }
    if (at === undefined || at > now) {
      return { ...base, state: 'next' as const, activateAfter: publishedAt === null ? null : publishedAt + policy.publishDelay }
    }
    const succ = successorActivation(set, at)
    if (succ !== null && succ <= now) return { ...base, state: 'retiring' as const, supersededAt: succ, removeAfter: succ + policy.retireDelay }
    return { ...base, state: 'active' as const }
  })
}

/**
 * The document with every key's metadata made explicit, ready to be written:
 * a key without `published_at` counts as published now (the cautious reading:
 * it must then wait the whole publish delay before it may sign); the legacy
 * `active` key gets `activate_at: 0` ("since before the schedule").
 */
export function normalizedDocument(set: LoadedKeySet, nowMs: number): KeySetDocument {
  const now = Math.floor(sec(nowMs))
  const gatehouse: Record<string, KeyMeta> = {}
  for (const k of set.keys) {
    const meta = set.meta.get(k.kid)
    const at = set.activations.get(k.kid)
    const m: KeyMeta = { published_at: meta?.published_at ?? now }
    if (at !== undefined) m.activate_at = Math.max(at, 0)
    gatehouse[k.kid] = m
  }
  return { keys: set.doc.keys.map((j) => ({ ...j })), gatehouse }
}

function statusOf(set: LoadedKeySet, kid: string, nowMs: number, policy: KeyPolicy): KeyStatus {
  const s = describeKeys(set, nowMs, policy).find((k) => k.kid === kid)
  if (!s) throw new KeyLifecycleError('not_found', `no key ${kid} in the set`)
  return s
}

const iso = (s: number): string => new Date(s * 1000).toISOString()

/**
 * Publishes a new key. With `schedule`, its activation is set for the end of
 * the publish delay (what automatic rotation does); without, it waits for
 * `activate`. Refused while another key is still `next`.
 */
export async function addNextKey(set: LoadedKeySet, nowMs: number, policy: KeyPolicy, opts: { schedule?: boolean; jwk?: JWK } = {}): Promise<KeyChange> {
  const pending = describeKeys(set, nowMs, policy).find((k) => k.state === 'next')
  if (pending) throw new KeyLifecycleError('conflict', `key ${pending.kid} is already waiting to be activated; activate or retire it first`)
  const jwk = opts.jwk ?? (await generateRsaJwkAsync())
  const kid = await kidOf(jwk)
  if (set.keys.some((k) => k.kid === kid)) throw new KeyLifecycleError('conflict', `key ${kid} is already in the set`)
  const doc = normalizedDocument(set, nowMs)
  const now = Math.floor(sec(nowMs))
  const meta: KeyMeta = { published_at: now }
  if (opts.schedule) meta.activate_at = now + policy.publishDelay
  doc.keys.push({ ...jwk, kid })
  doc.gatehouse![kid] = meta
  const event: KeyEvent = { event: 'keys.next_added', kid, activate_after: now + policy.publishDelay }
  if (meta.activate_at !== undefined) event.activate_at = meta.activate_at
  return { doc, events: [event] }
}

/**
 * Makes a published key the signing key, `activationDelay` from now so every
 * replica switches at the same instant. Refused before the key has been
 * published for the publish delay, unless `force` (an emergency: activation
 * is then immediate and verifiers rely on their unknown-kid refetch).
 */
export function activateKey(set: LoadedKeySet, kid: string, nowMs: number, policy: KeyPolicy, opts: { force?: boolean } = {}): KeyChange {
  const s = statusOf(set, kid, nowMs, policy)
  if (s.state === 'active') throw new KeyLifecycleError('conflict', `key ${kid} is already the active key`)
  const now = sec(nowMs)
  // A retiring key has been published all along; it may come back at once (a rollback).
  const earliest = s.state === 'next' ? (s.activateAfter ?? Math.floor(now) + policy.publishDelay) : 0
  if (!opts.force && now < earliest) {
    throw new KeyLifecycleError('too_early', `key ${kid} was published at ${iso(s.publishedAt ?? 0)}; verifiers may not have it before ${iso(earliest)} (JWKS_MAX_AGE + KEYS_RELOAD_INTERVAL + KEY_ROTATION_MARGIN); use --force only in an emergency`)
  }
  const at = opts.force ? Math.floor(now) : Math.ceil(now) + policy.activationDelay
  // Activation times must differ from every other key's (one key per instant).
  let activateAt = at
  const taken = new Set(set.activations.values())
  while (taken.has(activateAt)) activateAt++
  const doc = normalizedDocument(set, nowMs)
  doc.gatehouse![kid] = { ...doc.gatehouse![kid]!, activate_at: activateAt }
  const replaces = describeKeys(set, nowMs, policy).find((k) => k.state === 'active')?.kid
  return { doc, events: [{ event: 'keys.activated', kid, activate_at: activateAt, replaces, forced: opts.force === true }] }
}

/**
 * Unpublishes a key. The active key never; a `next` key at once (it never
 * signed anything); a `retiring` key once every token it signed has expired,
 * or at once with `force` (a compromised key: its tokens then fail).
 */
export function retireKey(set: LoadedKeySet, kid: string, nowMs: number, policy: KeyPolicy, opts: { force?: boolean } = {}): KeyChange {
  const s = statusOf(set, kid, nowMs, policy)
  if (s.state === 'active') throw new KeyLifecycleError('conflict', `key ${kid} is the active key; activate another key first`)
  if (s.state === 'retiring' && !opts.force && sec(nowMs) < s.removeAfter!) {
    throw new KeyLifecycleError('too_early', `tokens signed by ${kid} may be valid until ${iso(s.removeAfter!)} (its successor took over at ${iso(s.supersededAt!)}, plus the longest token lifetime); use --force only if the key is compromised`)
  }
  const doc = normalizedDocument(set, nowMs)
  doc.keys = doc.keys.filter((j) => j.kid !== kid)
  delete doc.gatehouse![kid]
  // A scheduled key removed before its activation must not leave the set without a signer.
  if (doc.keys.length === 0) throw new KeyLifecycleError('conflict', 'cannot remove the last key')
  return { doc, events: [{ event: 'keys.retired', kid, state: s.state, forced: opts.force === true && s.state === 'retiring' && sec(nowMs) < s.removeAfter! }] }
}

export type RotationAction = { kind: 'retire'; kid: string } | { kind: 'activate'; kid: string } | { kind: 'add' }

/**
 * The next step automatic rotation (or `gatehouse keys rotate`) should take
 * now, or null when nothing is due: first, remove retiring keys whose tokens
 * have all expired; then, when the active key has signed for
 * `rotationInterval` minus the publish delay (or `now` is asked for) and no
 * key is waiting, publish a new key scheduled to activate after the publish
 * delay, so each key signs for `rotationInterval`. Cheap: decides only.
 */
export function dueRotationAction(set: LoadedKeySet, nowMs: number, policy: KeyPolicy, opts: { now?: boolean } = {}): RotationAction | null {
  const now = sec(nowMs)
  const status = describeKeys(set, nowMs, policy)
  const expired = status.find((k) => k.state === 'retiring' && now >= k.removeAfter!)
  if (expired) return { kind: 'retire', kid: expired.kid }
  const active = status.find((k) => k.state === 'active')
  const since = active?.activateAt ?? 0
  const due = opts.now === true || (policy.rotationInterval > 0 && now >= since + policy.rotationInterval - policy.publishDelay)
  const pending = status.find((k) => k.state === 'next')
  if (pending) {
    // A key added by hand (never scheduled) would block the schedule: activate it once it may sign.
    if (due && pending.activateAt === null && pending.activateAfter !== null && now >= pending.activateAfter) return { kind: 'activate', kid: pending.kid }
    return null
  }
  return due ? { kind: 'add' } : null
}

/** Takes the step dueRotationAction names (null when none is due). */
export async function dueRotationStep(set: LoadedKeySet, nowMs: number, policy: KeyPolicy, opts: { now?: boolean } = {}): Promise<KeyChange | null> {
  const action = dueRotationAction(set, nowMs, policy, opts)
  if (action === null) return null
  if (action.kind === 'retire') return retireKey(set, action.kid, nowMs, policy)
  if (action.kind === 'activate') return activateKey(set, action.kid, nowMs, policy)
  return await addNextKey(set, nowMs, policy, { schedule: true })
}
