/**
 * The one place Redis key names of the refresh-token store are built (STYLE: "Redis keys built in
 * one module"). Every key of a family carries the `{familyId}` hash tag so that, in Redis Cluster,
 * they all live in one slot and one Lua script may touch them atomically (DESIGN §5). The index
 * sets (per user, per session) live in other slots and are written by separate commands.
 */
export const DEFAULT_KEY_PREFIX = 'gatehouse:'

/** What a family id may look like before it is used in a key (the codec's ids are 22 base64url chars). */
const FAMILY_ID = /^[A-Za-z0-9_-]{1,64}$/

export function isFamilyId(value: unknown): value is string {
  return typeof value === 'string' && FAMILY_ID.test(value)
}

export interface FamilyKeys {
  readonly prefix: string
  /** `<prefix>fam:{<familyId>}`: the family hash (one key per family, whatever its rotations). */
  family(familyId: string): string
  /** `<prefix>user-fams:<userId>`: set of the user's family ids. */
  userFamilies(userId: string): string
  /** `<prefix>sess-fams:<sessionId>`: set of the login session's family ids. */
  sessionFamilies(sessionId: string): string
}

export function familyKeys(prefix: string = DEFAULT_KEY_PREFIX): FamilyKeys {
  // A brace in the prefix would become the hash tag of every key (Redis hashes the first {...}),
  // putting all families in one slot, or splitting a family's keys across slots.
  if (typeof prefix !== 'string' || /[{}\s]/.test(prefix)) {
    throw new TypeError('keyPrefix must be a string without braces or whitespace')
  }
  return Object.freeze({
    prefix,
    family(familyId: string): string {
      if (!isFamilyId(familyId)) throw new TypeError('invalid family id')
      return `${prefix}fam:{${familyId}}`
    },
    userFamilies(userId: string): string {
      return `${prefix}user-fams:${userId}`
    },
    sessionFamilies(sessionId: string): string {
      return `${prefix}sess-fams:${sessionId}`
    },
  })
}

// Keys of the login-session, authorization-code, pushed-request, client-assertion and DPoP-proof
// replay stores (sessions.ts, codes.ts, par/request-store.ts, replay.ts, dpop/redis-replay.ts).
// Each operation touches one key, so they need no hash tag in Redis Cluster; their variable parts
// are base64url (no braces, no whitespace).

/** `<prefix>login-sess:<sessionId>`: one login (cookie) session, JSON, expiring with the session. */
export function loginSessionKey(sessionId: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}login-sess:${sessionId}`
}

/** `<prefix>user-sess:<userId>`: sorted set of a user's login session ids, scored by their expiry (ms). */
export function userLoginSessionsKey(userId: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}user-sess:${userId}`
}

/** `<prefix>code:<codeHash>`: an authorization code by its SHA-256 (never the code itself), then its spent marker. */
export function authorizationCodeKey(codeHash: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}code:${codeHash}`
}

/** `<prefix>par:<referenceHash>`: a pushed authorization request (RFC 9126) by the SHA-256 of its reference, JSON, expiring with PAR_TTL. */
export function pushedRequestKey(referenceHash: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}par:${referenceHash}`
}

/** `<prefix>jti:<digest>`: a client assertion's (client, jti) seen, kept until the assertion's exp. */
export function assertionJtiKey(digest: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}jti:${digest}`
}

/**
 * `<prefix>dpop-jti:<replayKey>`: a DPoP proof seen (RFC 9449 §11.1), kept until the proof would be
 * refused as too old anyway (dpop/redis-replay.ts). The variable part is a SHA-256, base64url.
 */
export function dpopProofKey(replayKey: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dpop-jti:${replayKey}`
}

// Keys of the user and client directories and of the signing key set (redis-directory.ts,
// key-store.ts). Each operation touches one key, so they need no hash tag in Redis Cluster; a
// brace in a username or client id merely chooses that key's slot.

/** `<prefix>dir:user:<lowercased username>`: a user record (hash), keyed by its unique, case-insensitive name. */
export function userRecordKey(canonicalUsername: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:user:${canonicalUsername}`
}

/** `<prefix>dir:user-id:<userId>`: the lowercased username of a user id (the id → record index). */
export function userIdIndexKey(userId: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:user-id:${userId}`
}

/** `<prefix>dir:user-email:<lowercased email>`: the id of the user with that email (the email → record index). */
export function userEmailIndexKey(canonicalEmail: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:user-email:${canonicalEmail}`
}

/** `<prefix>dir:client:<clientId>`: a client record (hash). */
export function clientRecordKey(clientId: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:client:${clientId}`
}

/** `<prefix>dir:seeded`: set of `user:<name>` / `client:<id>` entries of the config file already seeded once. */
export function directorySeededKey(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:seeded`
}

/** `<prefix>dir:changes`: the channel on which a directory change is announced to every replica's cache (directory-cache.ts). */
export function directoryChangesChannel(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:changes`
}

/** `<prefix>dir:ack:<nonce>`: counts the replicas that dropped their copy after one announcement (short TTL). */
export function directoryAckKey(nonce: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}dir:ack:${nonce}`
}

/** SCAN MATCH patterns of the user and client records (glob characters of the prefix escaped). */
export function userRecordPattern(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${escapeGlob(prefix)}dir:user:*`
}

export function clientRecordPattern(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${escapeGlob(prefix)}dir:client:*`
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

/** `<prefix>signing-keys`: the signing key set (hash: `version`, `blob` = the encrypted JWK Set). */
export function signingKeySetKey(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}signing-keys`
}

/** `<prefix>signing-keys:lock`: held (SET NX PX) by the replica performing an automatic rotation step. */
export function signingKeyLockKey(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}signing-keys:lock`
}

// Keys of the login attempt limiter (login-limiter.ts). A bucket is one username or one client
// address, named by a digest (so neither shapes the key); its three keys share the `{...}` hash
// tag, so the one Lua script that checks and counts an attempt touches a single Cluster slot.

export interface LoginBucketKeys {
  /** Sorted set of counted attempts in the sliding window (score: ms; member: `<address tag>|<attempt id>`). */
  readonly attempts: string
  /** Hash of active lockouts: field `*` (everyone) or an address tag, value: locked until (ms). */
  readonly locks: string
  /** Sorted set of address tags with a successful login (score: ms), exempt from the `*` lockout. */
  readonly known: string
}

/** `<prefix>login:{<kind>:<digest>}:attempts|locks|known`; kind `u` (username) or `a` (address). */
export function loginBucketKeys(kind: 'u' | 'a', digest: string, prefix: string = DEFAULT_KEY_PREFIX): LoginBucketKeys {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(digest)) throw new TypeError('invalid login bucket digest')
  const base = `${prefix}login:{${kind}:${digest}}`
  return Object.freeze({ attempts: `${base}:attempts`, locks: `${base}:locks`, known: `${base}:known` })
}

// Keys of the back-channel logout queue (logout/redis-logout-queue.ts). Both share the `{bcl}`
// hash tag, so the Lua scripts that enqueue, claim and settle a job touch one Cluster slot.

export interface LogoutQueueKeys {
  /** Sorted set of job ids by the time (ms) they are next due. */
  readonly due: string
  /** Hash of job id → the job (JSON). */
  readonly jobs: string
}

/** `<prefix>bcl:{queue}:due|jobs` */
export function logoutQueueKeys(prefix: string = DEFAULT_KEY_PREFIX): LogoutQueueKeys {
  if (typeof prefix !== 'string' || /[{}\s]/.test(prefix)) throw new TypeError('keyPrefix must be a string without braces or whitespace')
  return Object.freeze({ due: `${prefix}bcl:{queue}:due`, jobs: `${prefix}bcl:{queue}:jobs` })
}

// Keys of the device authorization grant (device/redis-device-codes.ts, RFC 8628). A request is one
// hash under its device code's SHA-256; the user code's key only points to it. Every step that
// changes a request (approve, deny, poll, consume) is one Lua script on the one record key, and
// the pointer is written and read by single-key commands, so nothing spans two Cluster slots.

/** `<prefix>device:{<deviceCodeHash>}`: one device authorization request (hash), by the SHA-256 of its device code. */
export function deviceRequestKey(deviceCodeHash: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  if (!/^[A-Za-z0-9_-]{43}$/.test(deviceCodeHash)) throw new TypeError('invalid device code hash')
  return `${prefix}device:{${deviceCodeHash}}`
}

/** `<prefix>device-user:<USERCODE>`: the device code hash of the live request with that (normalised) user code. */
export function deviceUserCodeKey(userCode: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  if (!/^[A-Z]{8}$/.test(userCode)) throw new TypeError('invalid user code')
  return `${prefix}device-user:${userCode}`
}

/** The prefix of the user-code guessing limiter's buckets (a login limiter of its own: `<prefix>device-guess:login:{...}`). */
export function deviceGuessKeyPrefix(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}device-guess:`
}

// Keys of the second factors (mfa/redis-factors.ts, DESIGN §10.5). Durable: no TTL. A user's
// factors are one hash under the `{<userId>}` hash tag, so every step on them (add, use, remove)
// is one Lua script on one key, in one Cluster slot. A passkey's credential id points to its
// holder from a key of its own (another slot), claimed with SET NX and read with GET.

/** `<prefix>factors:{<userId>}`: hash of the user's factors, field = factor id, value = the factor (JSON). */
export function userFactorsKey(userId: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}factors:{${userId}}`
}

/** `<prefix>passkey:<digest>`: `<userId> <factorId>` of the passkey whose credential id has this SHA-256 (base64url). */
export function passkeyCredentialKey(credentialDigest: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  if (!/^[A-Za-z0-9_-]{43}$/.test(credentialDigest)) throw new TypeError('invalid credential digest')
  return `${prefix}passkey:${credentialDigest}`
}
