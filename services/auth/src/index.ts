export { buildApp, type BuildOptions } from './app.js'
export { createRuntime, type Runtime } from './bootstrap.js'
export { loadConfig, type AuthConfig } from './config.js'
export type { AuthDeps } from './deps.js'
