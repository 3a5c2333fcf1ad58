export { buildApp, type BuildOptions } from './app.js'
export { createRuntime, type Runtime } from './runtime/bootstrap.js'
export { loadConfig, type AuthConfig } from './config.js'
export type { AuthDeps } from './runtime/deps.js'
