import type { ResourceConfig } from './config-file.js'

/**
 * The resource services tokens are issued for (DESIGN §3: an audience and its scopes). Read on
 * requests (discovery's scopes_supported) and by the CLI (a new client's default audience), so
 * the list is held in memory: the config file's, or the `resources` table's as last loaded
 * (pg-resources.ts).
 */
export interface ResourceCatalog {
  list(): readonly ResourceConfig[]
}

/** The config file's resources (no database). */
export function fileResources(resources: readonly ResourceConfig[]): ResourceCatalog {
  const frozen = Object.freeze(resources.map((r) => Object.freeze({ audience: r.audience, scopes: [...r.scopes] })))
  return { list: () => frozen }
}
