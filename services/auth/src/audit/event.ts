import { SECRET_FIELDS } from '@gatehouse/service-kit'

/**
 * The audit trail's record (issue 13, DESIGN §9, §10.2): who did what to whom, from where, when,
 * and how it ended. Made from the fields of the audit log line it accompanies (`audit()` in
 * audit/trail.ts writes both), so the line and the record always say the same thing.
 */

/** The events the trail keeps: sign-ins, failures, lockouts, reuse detections, revocations, admin actions. */
export const AUDITED_EVENTS = {
  'login.succeeded': { outcome: 'success', actor: 'user' },
  'login.failed': { outcome: 'failure', actor: 'none' },
  'login.locked': { outcome: 'failure', actor: 'none' },
  'client.auth_failed': { outcome: 'failure', actor: 'client' },
  'refresh_token.reuse_detected': { outcome: 'failure', actor: 'client' },
  'authorization_code.reused': { outcome: 'failure', actor: 'client' },
  'family.revoked': { outcome: 'success', actor: 'none' },
  'session.ended': { outcome: 'success', actor: 'none' },
  'token.revocation': { outcome: 'success', actor: 'client' },
  /** RFC 8693: a client exchanged a user's token for one to a downstream service (grants/token-exchange.ts). */
  'token.exchanged': { outcome: 'success', actor: 'client' },
  logout: { outcome: 'success', actor: 'user' },
  'device.approved': { outcome: 'success', actor: 'user' },
  'device.denied': { outcome: 'success', actor: 'user' },
  'device.user_code_failed': { outcome: 'failure', actor: 'user' },
  /** The user changed their own password on the account page (routes/account.ts); never the password. */
  'user.password_changed': { outcome: 'success', actor: 'user' },
  /** Second factors (mfa/, DESIGN §10.5): the kind and the factor id, never a secret, code or key. */
  'mfa.enrolled': { outcome: 'success', actor: 'user' },
  'mfa.removed': { outcome: 'success', actor: 'user' },
  'mfa.recovery_codes_generated': { outcome: 'success', actor: 'user' },
  /** A wrong, reused or replayed second factor (TOTP code, recovery code, passkey assertion). */
  'mfa.failed': { outcome: 'failure', actor: 'none' },
  /** Second-factor attempts locked out for a while (as login.locked for passwords). */
  'mfa.locked': { outcome: 'failure', actor: 'none' },
} as const satisfies Record<string, { outcome: AuditOutcome; actor: ActorType | 'none' }>

/** Every operator action is `admin.<verb>` (cli/admin.ts, cli/keys.ts), with the operator as actor. */
export type AuditEventName = keyof typeof AUDITED_EVENTS | `admin.${string}`
export type AuditOutcome = 'success' | 'failure'
export type ActorType = 'user' | 'client' | 'operator'

export interface AuditEvent {
  /** ms since the epoch */
  time: number
  event: AuditEventName
  outcome: AuditOutcome
  actorType: ActorType | null
  /** A user id, a client id or the operator's name (GATEHOUSE_ACTOR or the OS login). */
  actorId: string | null
  /** The user acted on or signing in (`sub`). */
  userId: string | null
  clientId: string | null
  /** The client address (request.ip). */
  address: string | null
  sessionId: string | null
  familyId: string | null
  /** Every other field of the log line, with anything named like a secret censored. */
  details: Record<string, unknown>
}

/** A stored event: its id orders events of the same millisecond. */
export interface StoredAuditEvent extends AuditEvent {
  id: string
}

/** The fields of an audit log line: `event` and identifiers, never a secret. */
export type AuditFields = { event: AuditEventName } & Record<string, unknown>

export function isAuditedEvent(name: string): name is AuditEventName {
  return name.startsWith('admin.') || Object.hasOwn(AUDITED_EVENTS, name)
}

/** Fields that become columns; the rest go to `details`. */
const COLUMNS = new Set(['event', 'actor', 'sub', 'user_id', 'client_id', 'ip', 'session_id', 'family_id'])
const MAX_ID = 256
const MAX_STRING = 512
const MAX_DETAILS = 4096
export const CENSORED = '[redacted]'

/** The trail's record of a log line's fields at `time`. */
export function toAuditEvent(fields: AuditFields, time: number): AuditEvent {
  const kind = fields.event.startsWith('admin.') ? { outcome: 'success' as const, actor: 'operator' as const } : AUDITED_EVENTS[fields.event as keyof typeof AUDITED_EVENTS]
  const operator = id(fields.actor)
  const userId = id(fields.sub) ?? id(fields.user_id)
  const clientId = id(fields.client_id)
  let actorType: ActorType | null = null
  let actorId: string | null = null
  if (operator !== null) [actorType, actorId] = ['operator', operator]
  else if (kind.actor === 'user' && userId !== null) [actorType, actorId] = ['user', userId]
  else if (kind.actor === 'client' && clientId !== null) [actorType, actorId] = ['client', clientId]
  const rest: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(fields)) if (!COLUMNS.has(k) && v !== undefined) rest[k] = v
  return {
    time,
    event: fields.event,
    outcome: kind.outcome,
    actorType,
    actorId,
    userId,
    clientId,
    address: id(fields.ip),
    sessionId: id(fields.session_id),
    familyId: id(fields.family_id),
    details: boundDetails(redactDetails(rest) as Record<string, unknown>),
  }
}

function id(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v.slice(0, MAX_ID) : null
}

/**
 * Names that carry a secret: the logger's list (service-kit SECRET_FIELDS), `code` (an
 * authorization code), and anything ending in token, secret, hash, password or assertion
 * (`password_hash`, `client_secret_hash`, `id_token_hint`'s kin). `token_type` and
 * `token_endpoint_auth_method` describe, they do not carry, and pass.
 */
const SECRET_SUFFIX = /(token|secret|hash|password|assertion|verifier|cookie|authorization|jwt)$/i
export function isSecretName(name: string): boolean {
  return SECRET_FIELDS.has(name) || name === 'code' || SECRET_SUFFIX.test(name)
}

/** A compact JWS/JWE (a token) or a PHC/modular-crypt hash, whatever field holds it. */
const SECRET_VALUE = /^(eyJ[\w-]*\.[\w-]*\.[\w-]*|\$(argon2|2[aby]|scrypt|pbkdf2)[\w$=,.+/-]*)/

/** A copy of `value` with every secret-named field and token-like string censored, at any depth (bounded). */
export function redactDetails(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return SECRET_VALUE.test(value) ? CENSORED : value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value
  if (value === null || typeof value !== 'object') return typeof value === 'bigint' ? String(value) : value
  if (depth >= 4) return '[nested]'
  if (value instanceof Error) return value.message.slice(0, MAX_STRING)
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => redactDetails(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = isSecretName(k) ? CENSORED : redactDetails(v, depth + 1)
  return out
}

/** Details of at most MAX_DETAILS characters of JSON: a larger one keeps its key names only. */
function boundDetails(details: Record<string, unknown>): Record<string, unknown> {
  const text = JSON.stringify(details)
  if (text.length <= MAX_DETAILS) return details
  return { truncated: true, keys: Object.keys(details).slice(0, 50) }
}
