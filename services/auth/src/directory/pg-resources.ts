import type { ResourceConfig } from './config-file.js'
import type { ResourceCatalog } from './resources.js'
import type { SeedMarks } from './seed.js'
import { pgCall } from '../database/pg-call.js'
import type { Pool } from '../database/pool.js'

export interface PgResourcesOptions {
  pool: Pool
  /** How often the in-memory list is read again (default 30 s; 0 = never). */
  refreshMs?: number
  log: { warn(obj: object, msg?: string): void }
}

/**
 * The `resources` table (DESIGN §10.2), held in memory: loaded at start and read again every
 * `refreshMs`, so a request never waits on the database for it and a database outage leaves the
 * last list in place (the failure is logged, the next refresh tries again).
 */
export class PgResources implements ResourceCatalog {
  readonly #o: PgResourcesOptions
  #current: readonly ResourceConfig[] = Object.freeze([])
  #timer: NodeJS.Timeout | undefined

  constructor(opts: PgResourcesOptions) {
    this.#o = opts
  }

  list(): readonly ResourceConfig[] {
    return this.#current
  }

  /** Every resource, from the table (by audience); throws StoreUnavailable. */
  async all(): Promise<ResourceConfig[]> {
    const { rows } = await pgCall('resources.list', () => this.#o.pool.query<ResourceConfig>('SELECT audience, scopes FROM resources ORDER BY audience'))
    return rows.map((r) => ({ audience: r.audience, scopes: [...r.scopes] }))
  }

  /** Reads the table into memory; throws StoreUnavailable. */
  async load(): Promise<void> {
    this.#current = Object.freeze(await this.all())
  }

  /** Adds the config file's resources not seeded before (SeedMarks); returns how many were added. */
  async seed(resources: readonly ResourceConfig[], marks: SeedMarks): Promise<number> {
    let added = 0
    for (const r of resources) {
      const marker = `resource:${r.audience}`
      if (await marks.has(marker)) continue
      const sql = 'INSERT INTO resources (audience, scopes) VALUES ($1, $2) ON CONFLICT DO NOTHING'
      const { rowCount } = await pgCall('resources.seed', () => this.#o.pool.query(sql, [r.audience, r.scopes]))
      added += rowCount ?? 0
      await marks.add(marker)
    }
    return added
  }

  start(): void {
    const every = this.#o.refreshMs ?? 30_000
    if (every <= 0 || this.#timer !== undefined) return
    this.#timer = setInterval(() => {
      this.load().catch((err: unknown) => this.#o.log.warn({ event: 'resources.refresh_failed', err: (err as Error).message }, 'reading the resources again failed; keeping the last list'))
    }, every)
    this.#timer.unref()
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }
}
