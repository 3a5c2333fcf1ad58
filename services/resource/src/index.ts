export { buildApp, type ResourceDeps } from './app.js'
export { loadConfig, type ResourceConfig } from './config.js'
export { DocumentStore, type Document } from './document-store.js'
export type { HealthState } from './routes/health.js'
