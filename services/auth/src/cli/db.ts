import { migrateDatabase, MigrationError } from '../database/migrate.js'
import type { CliContext } from './context.js'
import { CliError, type GroupSpec } from './framework.js'

/** `gatehouse db`: the PostgreSQL schema (DESIGN §10.2), versioned migrations by node-pg-migrate. */
export function dbGroup(ctx: CliContext): GroupSpec {
  return {
    name: 'db',
    summary: 'the PostgreSQL database (DATABASE_URL): apply migrations',
    commands: [
      {
        name: 'migrate',
        summary: 'apply the pending schema migrations (safe to run again, and from several places at once)',
        details: 'Migrations are versioned SQL files shipped with the service (services/auth/migrations), applied in order in one transaction and recorded in the table gatehouse_migrations. DATABASE_MIGRATE=1 applies them when the service starts instead.',
        options: { 'dry-run': { type: 'boolean', description: 'list the pending migrations without applying them' } },
        examples: ['DATABASE_URL=postgres://gatehouse@db/gatehouse gatehouse db migrate', 'gatehouse db migrate --dry-run --json'],
        async run(inv) {
          const config = await ctx.config()
          if (!config.database) throw new CliError('DATABASE_URL is not set: there is no database to migrate', 1, 'config')
          const dryRun = inv.values['dry-run'] === true
          let names: string[]
          try {
            names = await migrateDatabase(config.database.url, { dryRun })
          } catch (err) {
            if (err instanceof MigrationError) throw new CliError(err.message, 1, 'unavailable')
            throw err
          }
          const human = names.length === 0 ? 'the database is up to date' : names.map((n) => `${dryRun ? 'pending' : 'applied'} ${n}`).join('\n')
          inv.print(human, { [dryRun ? 'pending' : 'applied']: names })
        },
      },
    ],
  }
}
