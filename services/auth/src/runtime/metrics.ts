import { Counter, Registry, collectDefaultMetrics } from 'prom-client'

/** The auth service's metrics, on a registry of its own (one per app instance). */
export class AuthMetrics {
  readonly registry = new Registry()
  readonly tokensIssued = new Counter({
    name: 'gatehouse_tokens_issued_total',
    help: 'Access tokens issued, by grant type',
    labelNames: ['grant_type'] as const,
    registers: [this.registry],
  })
  readonly refreshRotations = new Counter({
    name: 'gatehouse_refresh_rotations_total',
    help: 'Refresh-token rotations, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })
  readonly reuseDetected = new Counter({
    name: 'gatehouse_refresh_reuse_detected_total',
    help: 'Refresh-token reuse detections (each revoked a family)',
    registers: [this.registry],
  })
  readonly loginFailures = new Counter({
    name: 'gatehouse_login_failures_total',
    help: 'Failed user authentications',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })
  /** For the login attempt limiter (DESIGN §8: per user and per address), under this fixed name. */
  readonly loginLockouts = new Counter({
    name: 'gatehouse_login_lockouts_total',
    help: 'Login attempts refused because the user or the address is locked out',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  })
  readonly loginDelayed = new Counter({
    name: 'gatehouse_login_delayed_total',
    help: 'Login attempts made to wait (progressive delay) before their password was checked',
    registers: [this.registry],
  })
  readonly loginThrottled = new Counter({
    name: 'gatehouse_login_throttled_total',
    help: 'Login attempts refused unchecked because too many delayed attempts were already waiting',
    registers: [this.registry],
  })
  readonly clientAuthFailures = new Counter({
    name: 'gatehouse_client_auth_failures_total',
    help: 'Failed client authentications',
    registers: [this.registry],
  })
  /**
   * Cluster only: writes of a revocation to the recent set that happen after the revoking script
   * (families/revocation-outbox.ts): `failed` (retried), `delivered` (after a retry), `dropped`.
   */
  readonly revocationAnnouncements = new Counter({
    name: 'gatehouse_revocation_announcements_total',
    help: 'Revocation announcements written outside the revoking script, by outcome (failed attempts are retried)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })
  readonly storeErrors = new Counter({
    name: 'gatehouse_store_errors_total',
    help: 'Store (Redis) failures answered with 503',
    registers: [this.registry],
  })

  /** OIDC Back-Channel Logout deliveries (logout/worker.ts). */
  readonly backchannelLogout = new Counter({
    name: 'gatehouse_backchannel_logout_total',
    help: 'Back-channel logout deliveries, by outcome (delivered, retry, failed after the last retry, dropped)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

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
}
