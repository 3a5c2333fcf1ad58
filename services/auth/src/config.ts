/*
 * Over 300 lines on purpose: this is the one reader of the environment (STYLE: Config), so every
 * variable, its default, its bounds and the problems it can report stay in one place.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { fileURLToPath } from 'node:url'
import { ConfigError, EnvReader, LOG_LEVELS, readHttpTimeouts, readOverloadLimits, type Env, type OverloadLimits, type HttpTimeouts, type LogLevel } from '@gatehouse/service-kit'
import { readAuthFileConfig, type AuthFileConfig } from './directory/config-file.js'

/** The auth service's whole configuration: one typed, frozen object (STYLE: Config). */
export interface AuthConfig {
  readonly production: boolean
  readonly host: string
  readonly port: number
  /** No trailing slash. */
  readonly issuer: string
  readonly configFile: string
  readonly file: AuthFileConfig
  readonly redis: RedisSettings | null
  readonly signingKeysFile: string | undefined
  /** Where the signing key set lives: `file` (SIGNING_KEYS_FILE, re-read) or `redis` (encrypted at rest). */
  readonly signingKeysStore: 'file' | 'redis'
  /** Key-encryption secret of the key set in Redis (SIGNING_KEYS_ENCRYPTION_SECRET). */
  readonly signingKeysEncryptionSecret: string | undefined
  /** seconds: Cache-Control max-age of /jwks.json (JWKS_MAX_AGE) */
  readonly jwksMaxAge: number
  /** seconds: how often every replica re-reads the key set (KEYS_RELOAD_INTERVAL) */
  readonly keysReloadInterval: number
  /** seconds between automatic rotations; 0 = manual (KEY_ROTATION_INTERVAL) */
  readonly keyRotationInterval: number
  /** seconds added to every waiting period of a rotation: clock skew, slow propagation (KEY_ROTATION_MARGIN) */
  readonly keyRotationMargin: number
  /** seconds */
  readonly accessTokenTtl: number
  readonly refreshTokenTtl: number
  readonly refreshTokenIdleTtl: number
  readonly refreshReuseGrace: number
  /** seconds a pushed authorization request waits for /authorize (PAR_TTL, RFC 9126 §2.2 expires_in) */
  readonly parTtl: number
  /** REQUIRE_PAR: every client must push its authorization requests (RFC 9126 §4, §5 require_pushed_authorization_requests) */
  readonly requirePar: boolean
  /** The first of cookieSecrets: what signs. */
  readonly cookieSecret: string
  /** COOKIE_SECRET, a comma-separated list: the first signs cookies, every one verifies (rotation). */
  readonly cookieSecrets: readonly string[]
  readonly cookieSecretGenerated: boolean
  /** REFRESH_TOKEN_SECRET, a list as above: the first keys new refresh-token MACs, every one verifies. */
  readonly refreshTokenSecrets: readonly string[]
  /** REFRESH_TOKEN_SECRET unset (development only): the refresh-token MAC is keyed from COOKIE_SECRET, as before it existed. */
  readonly refreshTokenSecretFromCookie: boolean
  readonly logLevel: LogLevel
  /** Login attempt limits (LOGIN_*; login-limiter.ts). */
  readonly loginLimits: LoginLimits
  /** fastify `trustProxy` (TRUST_PROXY): false = the socket address is the client's. */
  readonly trustProxy: false | string[]
  /** OIDC Back-Channel Logout delivery (logout/worker.ts). */
  readonly backchannelLogout: BackchannelLogoutSettings
  /** HTTP_REQUEST_TIMEOUT, HTTP_HEADERS_TIMEOUT, HTTP_KEEP_ALIVE_TIMEOUT (service-kit; defaults when absent). */
  readonly http?: HttpTimeouts
  /** OVERLOAD_* (service-kit overload.ts): when to shed load with 503 + Retry-After; defaults when absent. */
  readonly overload?: OverloadLimits
  /** PostgreSQL (DATABASE_URL, DESIGN §10.2): users, clients, resources and the audit trail; null = the config file. */
  readonly database: DatabaseSettings | null
  /** The audit trail (audit/): PostgreSQL with DATABASE_URL, else this process's memory. */
  readonly audit: AuditSettings
  /** DPOP_REQUIRE_NONCE: every DPoP proof must carry a server nonce (RFC 9449 §8); default false. */
  readonly dpopRequireNonce: boolean
  /** The device authorization grant (RFC 8628; device/). */
  readonly device: DeviceSettings
}

export interface DeviceSettings {
  /** DEVICE_CODE_TTL, seconds: how long a device code and its user code are valid (RFC 8628 §3.2 expires_in). */
  readonly codeTtl: number
  /** DEVICE_POLL_INTERVAL, seconds: the least wait between two polls of /token (RFC 8628 §3.2 interval). */
  readonly pollInterval: number
}

export interface AuditSettings {
  /** AUDIT_RETENTION_DAYS: events older are deleted (in batches, hourly); 0 = kept forever. */
  readonly retentionDays: number
  /** AUDIT_BUFFER_SIZE: events held for writing (PostgreSQL) or kept (memory); beyond it they are dropped, counted. */
  readonly bufferSize: number
}

export interface DatabaseSettings {
  /** DATABASE_URL: `postgres://` or `postgresql://`; never logged (it may carry a password). */
  readonly url: string
  /** DATABASE_MIGRATE=1: apply pending migrations at start (else `gatehouse db migrate`). */
  readonly migrate: boolean
  /** DATABASE_POOL_SIZE: connections per process. */
  readonly poolSize: number
  /** DATABASE_STATEMENT_TIMEOUT, milliseconds: a statement that runs longer is cancelled (503). */
  readonly statementTimeoutMs: number
  /** DATABASE_CONNECT_TIMEOUT, milliseconds: the wait for a connection, new or from the pool. */
  readonly connectTimeoutMs: number
}

export interface BackchannelLogoutSettings {
  /** BACKCHANNEL_LOGOUT_TIMEOUT: seconds per delivery attempt. */
  readonly timeout: number
  /** BACKCHANNEL_LOGOUT_RETRIES: retries after the first attempt, with exponential backoff. */
  readonly retries: number
}

export interface LoginLimits {
  /** LOGIN_MAX_ATTEMPTS: attempts per username in the window. */
  readonly maxAttempts: number
  /** LOGIN_MAX_ATTEMPTS_PER_ADDRESS: attempts per client address in the window. */
  readonly maxAttemptsPerAddress: number
  /** LOGIN_WINDOW, seconds. */
  readonly window: number
  /** LOGIN_LOCKOUT, seconds. */
  readonly lockout: number
  /** LOGIN_DELAY_MS: the first progressive delay; 0 = none. */
  readonly delayMs: number
}

export interface RedisSettings {
  url?: string
  clusterNodes?: { host: string; port: number }[]
  sentinels?: { host: string; port: number }[]
  sentinelName?: string
  /** ACL user and password of the Cluster nodes or the Sentinel-managed master (a URL carries its own). */
  username?: string
  password?: string
  /** TLS to the Cluster nodes or the Sentinel-managed master (a URL says rediss://). */
  tls?: boolean
}

export const DEV_CONFIG_FILE = fileURLToPath(new URL('../config/dev.json', import.meta.url))

/** Reads and validates the environment and the config file; throws one ConfigError listing every problem. */
export async function loadConfig(env: Env): Promise<AuthConfig> {
  const r = new EnvReader(env)
  const production = env.NODE_ENV === 'production'
  const host = r.string('HOST', '127.0.0.1')
  const port = r.port('PORT', 4000)
  const issuerRaw = r.url('ISSUER', 'http://127.0.0.1:4000') ?? 'http://127.0.0.1:4000'
  const issuer = issuerRaw.replace(/\/+$/, '')
  if (/[?#]/.test(issuer)) r.problem('ISSUER must not have a query or fragment (OIDC Discovery §3)')

  const configFileEnv = r.optional('AUTH_CONFIG_FILE')
  if (production && !configFileEnv) r.problem('AUTH_CONFIG_FILE is required when NODE_ENV=production (the dev config seeds demo users)')
  const configFile = configFileEnv ?? DEV_CONFIG_FILE

  const url = r.url('REDIS_URL', undefined, ['redis:', 'rediss:'])
  const clusterNodes = r.hostPorts('REDIS_CLUSTER_NODES')
  const sentinels = r.hostPorts('REDIS_SENTINELS')
  const sentinelName = r.optional('REDIS_SENTINEL_NAME')
  if (sentinels && !sentinelName) r.problem('REDIS_SENTINEL_NAME is required with REDIS_SENTINELS')
  if (sentinelName && !sentinels) r.problem('REDIS_SENTINELS is required with REDIS_SENTINEL_NAME')
  const topologies = [url, clusterNodes, sentinels].filter((x) => x !== undefined).length
  if (topologies > 1) r.problem('set only one of REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS')
  let redis: RedisSettings | null = null
  if (url) redis = { url }
  else if (clusterNodes) redis = { clusterNodes }
  else if (sentinels && sentinelName) redis = { sentinels, sentinelName }
  // Managed Cluster and Sentinel deployments need credentials and TLS that no URL can carry.
  const redisUsername = r.optional('REDIS_USERNAME')
  const redisPassword = r.optional('REDIS_PASSWORD')
  const redisTls = r.oneOf('REDIS_TLS', 'false', ['true', 'false'] as const) === 'true'
  if (url && (redisUsername || redisPassword || redisTls)) r.problem('REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS apply to REDIS_CLUSTER_NODES / REDIS_SENTINELS: put credentials and rediss:// in REDIS_URL')
  if (redis && !url) {
    if (redisUsername) redis.username = redisUsername
    if (redisPassword) redis.password = redisPassword
    if (redisTls) redis.tls = true
  }
  if (production && !redis) r.problem('REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is required when NODE_ENV=production: the in-memory store is for development only')

  const signingKeysFile = r.optional('SIGNING_KEYS_FILE')
  const signingKeysStore = r.oneOf('SIGNING_KEYS_STORE', 'file', ['file', 'redis'] as const)
  const signingKeysEncryptionSecret = r.optional('SIGNING_KEYS_ENCRYPTION_SECRET')
  if (signingKeysStore === 'redis') {
    if (!redis) r.problem('SIGNING_KEYS_STORE=redis needs REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS)')
    if (signingKeysEncryptionSecret === undefined) r.problem('SIGNING_KEYS_ENCRYPTION_SECRET is required with SIGNING_KEYS_STORE=redis (the key set is encrypted at rest)')
  }
  if (signingKeysEncryptionSecret !== undefined && signingKeysEncryptionSecret.length < 32) r.problem('SIGNING_KEYS_ENCRYPTION_SECRET must be at least 32 characters')
  const jwksMaxAge = r.int('JWKS_MAX_AGE', 300, { min: 0, max: 86400 })
  const keysReloadInterval = r.int('KEYS_RELOAD_INTERVAL', 10, { min: 1, max: 3600 })
  const keyRotationMargin = r.int('KEY_ROTATION_MARGIN', 60, { min: 0, max: 86400 })
  const keyRotationInterval = r.int('KEY_ROTATION_INTERVAL', 0, { min: 0, max: 10 * 31536000 })
  if (keyRotationInterval > 0) {
    if (signingKeysStore !== 'redis') r.problem('KEY_ROTATION_INTERVAL needs SIGNING_KEYS_STORE=redis (with a key file, run `gatehouse keys rotate` on a schedule instead)')
    const publishDelay = jwksMaxAge + keysReloadInterval + keyRotationMargin
    if (keyRotationInterval <= publishDelay) r.problem(`KEY_ROTATION_INTERVAL must be longer than JWKS_MAX_AGE + KEYS_RELOAD_INTERVAL + KEY_ROTATION_MARGIN (${publishDelay})`)
  }
  if (production && !signingKeysFile && signingKeysStore !== 'redis') r.problem('SIGNING_KEYS_FILE is required when NODE_ENV=production: the generated key is for development only')

  const accessTokenTtl = r.int('ACCESS_TOKEN_TTL', 900, { min: 1, max: 86400 })
  const refreshTokenTtl = r.int('REFRESH_TOKEN_TTL', 2592000, { min: 1, max: 31536000 })
  const refreshTokenIdleTtl = r.int('REFRESH_TOKEN_IDLE_TTL', 604800, { min: 1, max: 31536000 })
  const refreshReuseGrace = r.int('REFRESH_REUSE_GRACE', 10, { min: 0, max: 300 })
  // RFC 9126 §2.2: a short lifetime (the RFC's examples use 60 to 600 seconds); the request waits only for a redirect.
  const parTtl = r.int('PAR_TTL', 60, { min: 1, max: 600 })
  const requirePar = r.oneOf('REQUIRE_PAR', 'false', ['true', 'false'] as const) === 'true'

  const cookieGiven = secretList(r, 'COOKIE_SECRET', production)
  const cookieSecretGenerated = cookieGiven === undefined
  if (production && cookieSecretGenerated) r.problem('COOKIE_SECRET (or COOKIE_SECRET_FILE) is required when NODE_ENV=production')
  const cookieSecrets = Object.freeze(cookieGiven ?? [randomBytes(32).toString('base64url')])
  const cookieSecret = cookieSecrets[0]!
  const refreshGiven = secretList(r, 'REFRESH_TOKEN_SECRET', production)
  if (production && refreshGiven === undefined) {
    r.problem('REFRESH_TOKEN_SECRET (or REFRESH_TOKEN_SECRET_FILE) is required when NODE_ENV=production (to keep the refresh tokens issued before it existed, start with your current COOKIE_SECRET)')
  }
  // Outside production an unset REFRESH_TOKEN_SECRET keeps the old keying (from COOKIE_SECRET), so
  // existing development setups, and replicas that share only COOKIE_SECRET, keep working.
  const refreshTokenSecretFromCookie = refreshGiven === undefined
  const refreshTokenSecrets = Object.freeze(refreshGiven ?? cookieSecrets)

  const logLevel = r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS)

  const loginLimits: LoginLimits = Object.freeze({
    maxAttempts: r.int('LOGIN_MAX_ATTEMPTS', 10, { min: 1, max: 1000 }),
    maxAttemptsPerAddress: r.int('LOGIN_MAX_ATTEMPTS_PER_ADDRESS', 100, { min: 1, max: 1_000_000 }),
    window: r.int('LOGIN_WINDOW', 900, { min: 1, max: 86400 }),
    lockout: r.int('LOGIN_LOCKOUT', 900, { min: 1, max: 86400 }),
    delayMs: r.int('LOGIN_DELAY_MS', 250, { min: 0, max: 5000 }),
  })
  const trustProxy = parseTrustProxy(r)
  const backchannelLogout: BackchannelLogoutSettings = Object.freeze({
    timeout: r.int('BACKCHANNEL_LOGOUT_TIMEOUT', 5, { min: 1, max: 60 }),
    retries: r.int('BACKCHANNEL_LOGOUT_RETRIES', 5, { min: 0, max: 10 }),
  })
  const http = readHttpTimeouts(r)
  const overload = readOverloadLimits(r, production)
  const database = readDatabase(r)
  const audit: AuditSettings = Object.freeze({
    retentionDays: r.int('AUDIT_RETENTION_DAYS', 90, { min: 0, max: 36_500 }),
    bufferSize: r.int('AUDIT_BUFFER_SIZE', 10_000, { min: 100, max: 1_000_000 }),
  })
  // RFC 8628 §3.2: expires_in and interval. A user code must live long enough to be typed in on
  // another device, and not so long that guessing has a large set of live codes to hit (§5.1).
  const device: DeviceSettings = Object.freeze({
    codeTtl: r.int('DEVICE_CODE_TTL', 600, { min: 60, max: 3600 }),
    pollInterval: r.int('DEVICE_POLL_INTERVAL', 5, { min: 1, max: 60 }),
  })

  const dpopRequireNonce = r.oneOf('DPOP_REQUIRE_NONCE', 'false', ['true', 'false'] as const) === 'true'

  const { config: file, problems } = await readAuthFileConfig(configFile)
  for (const p of problems) r.problem(p)
  // With Redis or PostgreSQL the store is the source of truth for clients (the file only seeds it).
  if (file.clients.length === 0 && problems.length === 0 && !redis && !database) r.problem(`AUTH_CONFIG_FILE ${configFile}: defines no clients`)
  r.done()

  return Object.freeze({
    production,
    host,
    port,
    issuer,
    configFile,
    file,
    redis,
    signingKeysFile,
    signingKeysStore,
    signingKeysEncryptionSecret,
    jwksMaxAge,
    keysReloadInterval,
    keyRotationInterval,
    keyRotationMargin,
    accessTokenTtl,
    refreshTokenTtl,
    refreshTokenIdleTtl,
    refreshReuseGrace,
    parTtl,
    requirePar,
    cookieSecret,
    cookieSecrets,
    cookieSecretGenerated,
    refreshTokenSecrets,
    refreshTokenSecretFromCookie,
    logLevel,
    loginLimits,
    trustProxy,
    backchannelLogout,
    http,
    overload,
    database,
    audit,
    dpopRequireNonce,
    device,
  })
}

function readDatabase(r: EnvReader): DatabaseSettings | null {
  // DATABASE_URL_FILE (the Docker secrets convention, as COOKIE_SECRET_FILE): the URL with its
  // password stays out of the environment; docker-compose.yml's keygen writes one.
  const fromFile = r.optional('DATABASE_URL') === undefined ? secretFile(r, 'DATABASE_URL') : undefined
  const url = fromFile === undefined ? r.url('DATABASE_URL', undefined, ['postgres:', 'postgresql:']) : databaseUrlFromFile(r, fromFile)
  const migrate = r.oneOf('DATABASE_MIGRATE', '0', ['0', '1'] as const) === '1'
  const poolSize = r.int('DATABASE_POOL_SIZE', 10, { min: 1, max: 1000 })
  const statementTimeoutMs = r.int('DATABASE_STATEMENT_TIMEOUT', 5000, { min: 100, max: 600_000 })
  const connectTimeoutMs = r.int('DATABASE_CONNECT_TIMEOUT', 5000, { min: 100, max: 600_000 })
  if (url === undefined) {
    if (migrate) r.problem('DATABASE_MIGRATE=1 needs DATABASE_URL')
    return null
  }
  return Object.freeze({ url, migrate, poolSize, statementTimeoutMs, connectTimeoutMs })
}

/** The content of DATABASE_URL_FILE, checked as DATABASE_URL is but never quoted (it holds a password). */
function databaseUrlFromFile(r: EnvReader, value: string): string | undefined {
  let protocol = ''
  try {
    protocol = new URL(value).protocol
  } catch {
    // reported below
  }
  if (protocol === 'postgres:' || protocol === 'postgresql:') return value
  r.problem('DATABASE_URL_FILE must hold a postgres:// or postgresql:// URL')
  return undefined
}

/**
 * Secrets published in this repository (docker-compose.yml's former default, test fixtures):
 * anyone can read them, so production refuses them (DESIGN §10.1).
 */
export const PUBLISHED_SECRETS: ReadonlySet<string> = new Set([
  'dev-only-compose-cookie-secret-not-for-production',
  'outage-test-cookie-secret-0123456789abcdef',
  'rotation-test-cookie-secret-0123456789abcdef',
])

/**
 * `<NAME>_FILE`, read when `<NAME>` is unset (the Docker secrets convention): the file holds the
 * value, surrounding white space trimmed. docker-compose.yml points at secrets the one-shot
 * `keygen` service generated into its volume, so `docker compose up` needs nothing set by hand.
 * A problem names the variable and the path, never the content.
 */
function secretFile(r: EnvReader, name: string): string | undefined {
  const path = r.optional(`${name}_FILE`)
  if (path === undefined) return undefined
  let text: string
  try {
    text = readFileSync(path, 'utf8').trim()
  } catch (err) {
    r.problem(`${name}_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    return undefined
  }
  if (text === '') r.problem(`${name}_FILE: ${path} is empty`)
  return text === '' ? undefined : text
}

/**
 * COOKIE_SECRET / REFRESH_TOKEN_SECRET: a comma-separated list (DESIGN §10.1); the first signs,
 * every one verifies, so a new secret is put first and the old one dropped once what it signed
 * has expired. Each at least 32 characters; in production none may be a published value.
 */
function secretList(r: EnvReader, name: string, production: boolean): string[] | undefined {
  const v = r.optional(name) ?? secretFile(r, name)
  if (v === undefined) return undefined
  const list = v.split(',').map((s) => s.trim()).filter(Boolean)
  if (list.length === 0) r.problem(`${name} must list at least one secret`)
  if (list.some((s) => s.length < 32)) r.problem(`${name} must be at least 32 characters (each of its comma-separated secrets)`)
  if (production && list.some((s) => PUBLISHED_SECRETS.has(s))) r.problem(`${name} is a published development value: set your own (32+ random characters) when NODE_ENV=production`)
  return list.length === 0 ? undefined : list
}

/**
 * TRUST_PROXY: unset = the client address is the socket's, and X-Forwarded-For is ignored (a
 * client could write anything there and pick its own rate-limit bucket). Behind a proxy: the
 * proxies' addresses or CIDRs (`10.0.0.0/8,127.0.0.1`); X-Forwarded-For is then read back to the
 * first address that is not one of them. A hop count or `true` is refused: neither checks that
 * the request came through the proxy at all, so a client reaching the service directly could name
 * its own address (fastify 5 treats a hop count as "trust nothing" for the same reason).
 */
function parseTrustProxy(r: EnvReader): false | string[] {
  const v = r.optional('TRUST_PROXY')
  if (v === undefined) return false
  const entries = v.split(',').map((s) => s.trim()).filter(Boolean)
  const bad = entries.filter((e) => {
    const [addr = '', bits, ...rest] = e.split('/')
    if (rest.length > 0 || isIP(addr) === 0) return true
    if (bits === undefined) return false
    const max = isIP(addr) === 4 ? 32 : 128
    return !/^\d{1,3}$/.test(bits) || Number(bits) > max
  })
  if (entries.length === 0 || bad.length > 0) {
    r.problem(`TRUST_PROXY must be a comma-separated list of proxy addresses or CIDRs (e.g. 10.0.0.0/8), got ${JSON.stringify(v)}`)
  }
  return entries
}

export { ConfigError }
