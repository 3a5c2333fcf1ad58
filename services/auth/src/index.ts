export { buildApp, type BuildOptions } from './app.js'
export { createRuntime, type Runtime } from './runtime/bootstrap.js'
export { ConfigError, loadConfig, type AuthConfig } from './config.js'
export type { AuthDeps } from './runtime/deps.js'
// What the operator commands do (`gatehouse users|clients|sessions`), for callers that drive them
// in process, as the security tests do.
export { Admin } from './cli/admin.js'
export type { SessionEnded } from './logout/backchannel.js'
export { MAX_PENDING_LOGOUTS } from './logout/confirmation.js'
// The service's own rules, for tools that must compute what it computes: a PKCE challenge
// (RFC 7636 §4.2), a password hash as the directory stores it, the Redis key of a family.
export { s256 } from './authorize/pkce.js'
export { hashPassword, verifyPassword } from './directory/passwords.js'
export { familyKeys } from './store/key-names.js'
export { StoreUnavailable } from './store/types.js'
