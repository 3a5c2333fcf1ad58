import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { describeKeys, type KeyPolicy, type KeyState } from '../keys/key-lifecycle.js'
import type { KeyRing } from '../keys/signing-keys.js'

/** A counter on the service's registry, its label names typed from the list. */
function counter<L extends string = string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  return new Counter({ name, help, labelNames, registers: [registry] })
}

/** The auth service's metrics, on a registry of its own (one per app instance). */
export class AuthMetrics {
  readonly registry = new Registry()
  readonly tokensIssued = counter(this.registry, 'gatehouse_tokens_issued_total', 'Access tokens issued, by grant type', ['grant_type'])
  readonly refreshRotations = counter(this.registry, 'gatehouse_refresh_rotations_total', 'Refresh-token rotations, by outcome', ['outcome'])
  readonly reuseDetected = counter(this.registry, 'gatehouse_refresh_reuse_detected_total', 'Refresh-token reuse detections (each revoked a family)')
  readonly loginFailures = counter(this.registry, 'gatehouse_login_failures_total', 'Failed user authentications', ['reason'])
  /** For the login attempt limiter (DESIGN §8: per user and per address), under this fixed name. */
  readonly loginLockouts = counter(this.registry, 'gatehouse_login_lockouts_total', 'Login attempts refused because the user or the address is locked out', ['scope'])
  readonly loginDelayed = counter(this.registry, 'gatehouse_login_delayed_total', 'Login attempts made to wait (progressive delay) before their password was checked')
  readonly loginThrottled = counter(this.registry, 'gatehouse_login_throttled_total', 'Login attempts refused unchecked because too many delayed attempts were already waiting')
  readonly clientAuthFailures = counter(this.registry, 'gatehouse_client_auth_failures_total', 'Failed client authentications')
  /**
   * Cluster only: writes of a revocation to the recent set that happen after the revoking script
   * (families/revocation-outbox.ts): `failed` (retried), `delivered` (after a retry), `dropped`.
   */
  readonly revocationAnnouncements = counter(this.registry, 'gatehouse_revocation_announcements_total', 'Revocation announcements written outside the revoking script, by outcome (failed attempts are retried)', ['outcome'])
  /** Pushed authorization requests (par/, RFC 9126): `pushed`, `refused` at /par; `used`, `not_found`, `expired`, `other_client` at /authorize. */
  readonly pushedRequests = counter(this.registry, 'gatehouse_pushed_authorization_requests_total', 'Pushed authorization requests by outcome: pushed or refused at /par; used, not_found, expired or other_client at /authorize', ['outcome'])
  /**
   * DPoP proofs (RFC 9449) at /token, /userinfo (dpop/): `accepted`, or why one was refused:
   * `missing` (required, none sent), `invalid`, `replayed`, `use_nonce` (no current server nonce),
   * `wrong_key` (a sound proof of another key than the token's or the refresh family's).
   */
  readonly dpopProofs = counter(this.registry, 'gatehouse_dpop_proofs_total', 'DPoP proofs by outcome (accepted, missing, invalid, replayed, use_nonce, wrong_key)', ['outcome'])
  readonly storeErrors = counter(this.registry, 'gatehouse_store_errors_total', 'Store (Redis) failures answered with 503')

  /** OIDC Back-Channel Logout deliveries (logout/worker.ts). */
  readonly backchannelLogout = counter(this.registry, 'gatehouse_backchannel_logout_total', 'Back-channel logout deliveries, by outcome (delivered, retry, failed after the last retry, dropped)', ['outcome'])

  /** The audit trail (audit/): events written, and dropped (buffer full, PostgreSQL down or slow). */
  readonly auditEvents = new Counter({
    name: 'gatehouse_audit_events_total',
    help: 'Audit-trail events by outcome: written, or dropped (buffer full, database unavailable)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  constructor({ defaultMetrics = true }: { defaultMetrics?: boolean } = {}) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry })
  }

  /**
   * The signing key set (keys/, DESIGN §7), read when Prometheus scrapes: keys by state, how long
   * the active key has signed, the automatic rotation period. Together they tell an operator that
   * the active key nears the end of its time with no successor published yet (the alert
   * GatehouseSigningKeyNoSuccessor, docs/operations.md). Call once per registry.
   */
  watchSigningKeys(read: () => SigningKeyFigures): void {
    const registers = [this.registry]
    new Gauge({
      name: 'gatehouse_signing_keys',
      help: 'Keys in the signing key set by state: next (published, not signing yet), active, retiring (superseded, still published)',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const { byState } = read()
        for (const state of KEY_STATES) this.set({ state }, byState[state])
      },
    })
    new Gauge({
      name: 'gatehouse_signing_key_active_age_seconds',
      help: 'Seconds the active signing key has signed (since its activation, else its publication); -1 when the key set does not say',
      registers,
      collect() {
        this.set(read().activeAgeSeconds)
      },
    })
    new Gauge({
      name: 'gatehouse_signing_key_rotation_interval_seconds',
      help: 'KEY_ROTATION_INTERVAL: seconds each key signs under automatic rotation; 0 = rotated by hand',
      registers,
      collect() {
        this.set(read().rotationIntervalSeconds)
      },
    })
  }
}

const KEY_STATES: readonly KeyState[] = ['next', 'active', 'retiring']

/** What watchSigningKeys reports. */
export interface SigningKeyFigures {
  byState: Record<KeyState, number>
  /** -1: unknown (a plain key file without the `gatehouse` metadata, or a generated development key). */
  activeAgeSeconds: number
  rotationIntervalSeconds: number
}

/**
 * The figures of a key ring at `nowMs`. The active key's age counts from its activation; for a key
 * active "since before the schedule" (activate_at 0, the legacy `active` member) from its
 * publication, a lower bound, so the alert never fires early; without either, -1.
 */
export function signingKeyFigures(ring: KeyRing, nowMs: number, policy: KeyPolicy): SigningKeyFigures {
  const set = ring.set
  const byState: Record<KeyState, number> = { next: 0, active: 0, retiring: 0 }
  if (!('activations' in set)) {
    // A snapshot without a schedule: one signing key, the others only published.
    return { byState: { ...byState, active: 1, retiring: set.keys.length - 1 }, activeAgeSeconds: -1, rotationIntervalSeconds: policy.rotationInterval }
  }
  const keys = describeKeys(set, nowMs, policy)
  for (const k of keys) byState[k.state]++
  const active = keys.find((k) => k.state === 'active')
  const since = active?.activateAt ? active.activateAt : active?.publishedAt ?? null
  const activeAgeSeconds = since === null ? -1 : Math.max(0, Math.floor(nowMs / 1000 - since))
  return { byState, activeAgeSeconds, rotationIntervalSeconds: policy.rotationInterval }
}
