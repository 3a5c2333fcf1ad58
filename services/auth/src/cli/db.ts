import { migrateDatabase, MigrationError } from '../database/migrate.js'
import { importRedisDirectory } from '../directory/import-redis.js'
import type { CliContext } from './context.js'
import { CliError, type GroupSpec } from './framework.js'

/** `gatehouse db`: the PostgreSQL schema (DESIGN §10.2), versioned migrations by node-pg-migrate. */
export function dbGroup(ctx: CliContext): GroupSpec {
  return {
    name: 'db',
    summary: 'the PostgreSQL database (DATABASE_URL): apply migrations, move a Redis-held directory over',
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
      {
        name: 'import-redis',
        summary: 'copy the users and clients held in Redis (REDIS_URL) into PostgreSQL (DATABASE_URL)',
        details:
          'Users keep their ids (the `sub` of their tokens), password hashes, emails, roles, claims and disabled flag; clients keep their secret hashes. What PostgreSQL holds already (the same id, username or email; the same client_id) is skipped, never overwritten, so the command is safe to run again. Redis is only read. Run it once, after `gatehouse db migrate`, when moving a running system to DATABASE_URL.',
        options: { 'dry-run': { type: 'boolean', description: 'count what would be copied without writing' } },
        examples: ['REDIS_URL=redis://redis:6379 DATABASE_URL=postgres://gatehouse@db/gatehouse gatehouse db import-redis --dry-run', 'gatehouse db import-redis --json'],
        async run(inv) {
          const config = await ctx.config()
          if (!config.database) throw new CliError('DATABASE_URL is not set: there is no database to copy into', 1, 'config')
          if (!config.redis) throw new CliError('REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set: there is no Redis directory to copy', 1, 'config')
          const db = (await ctx.database())!
          const dryRun = inv.values['dry-run'] === true
          const r = await importRedisDirectory(await ctx.redis(), db, { dryRun })
          const verb = dryRun ? 'would copy' : 'copied'
          const human = [`users: ${verb} ${r.users.copied}, skipped ${r.users.skipped} (already in PostgreSQL)`, `clients: ${verb} ${r.clients.copied}, skipped ${r.clients.skipped} (already in PostgreSQL)`].join('\n')
          if (!dryRun) ctx.audit.info({ event: 'admin.directory_imported', actor: ctx.actor, users: r.users, clients: r.clients }, 'Redis directory copied into PostgreSQL')
          inv.print(human, { dry_run: dryRun, users: r.users, clients: r.clients })
        },
      },
      {
        name: 'resources',
        summary: 'list the resource services (audiences and their scopes) the service issues tokens for',
        details: 'With DATABASE_URL, the resources table (seeded from the config file, each entry once); otherwise the config file.',
        examples: ['gatehouse db resources', 'gatehouse db resources --json'],
        async run(inv) {
          const config = await ctx.config()
          const db = await ctx.database()
          const resources = db ? await db.resources.all() : config.file.resources
          const human = resources.length === 0 ? 'no resources' : resources.map((r) => `${r.audience}  scopes="${r.scopes.join(' ')}"`).join('\n')
          inv.print(human, { source: db ? 'database' : 'config_file', resources })
        },
      },
    ],
  }
}
