import { Readable } from 'node:stream'
import { sampleOf, withCpu, type BenchSettings, type Scenario } from '../lib/context.js'
import { Loader } from '../lib/load.js'
import { measureRounds, ranChecks, ratio, toMeasurement, type Sample, type ScenarioResult, type Variant } from '../lib/measure.js'
import { CC_CLIENT, Scope, USERS, privateRedis, startAuth, type ServerHandle } from '../lib/stack.js'
import { ccRequest } from './client-credentials.js'
import { passwordLogins } from './password.js'
import { startPostgres, type PostgresServer } from '../../packages/test-harness/src/index.js'
import { run as gatehouse } from '../../services/auth/src/cli/run.js'
import { migrateDatabase } from '../../services/auth/src/database/migrate.js'
import { storedClientConfig } from '../../services/auth/src/directory/clients.js'
import { hashPassword } from '../../services/auth/src/directory/passwords.js'

/**
 * Issue 13: does a request cost the same with 1,000,000 users and 10,000 clients in PostgreSQL as
 * with the dev config's 8 users? Two databases on one private PostgreSQL, one filled inside the
 * server (generate_series: every filler user shares one argon2id hash computed once, every filler
 * client one secret hash), one holding only what the config file seeds (8 users, 2 clients); an
 * auth service on each (DATABASE_URL and a private Redis of its own, as production wires it), both
 * measured in the same alternating rounds: the password grant and client_credentials, 1M / 8 ≥
 * 0.95 each. Then the import rate of `gatehouse users import` (its run(), in this process) into
 * fresh databases: users per second.
 *
 * Opt-in (`--scenario directory-scale`): filling a million rows takes minutes. `--quick` fills
 * 10,000 users and 100 clients and imports 2,000 lines.
 */

const FULL = { users: 1_000_000, clients: 10_000, importLines: 20_000, importRuns: 3 }
const QUICK = { users: 10_000, clients: 100, importLines: 2_000, importRuns: 1 }

/** Fast, private, disposable (a benchmark's database need not survive a crash), and no statement runs for ever. */
const PG_SETTINGS = { statement_timeout: '600s', fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', shared_buffers: '256MB', max_wal_size: '4GB', checkpoint_timeout: '30min' }

/** Fills database `db` with `users` users sharing one argon2id hash and `clients` clients (generate_series, inside the server). */
export async function fill(pg: PostgresServer, db: string, users: number, clients: number): Promise<void> {
  const userHash = await hashPassword('filler-password-not-used')
  await pg.query(
    `INSERT INTO users (id, username, username_key, email, email_key, password_hash, roles)
     SELECT 'u_fill_' || g, 'fill-' || g, 'fill-' || g, 'fill-' || g || '@example.com', 'fill-' || g || '@example.com', $1, '{user}'
     FROM generate_series(1, $2::int) AS g`,
    [userHash, users],
    db,
  )
  const { client_secret_hash: secretHash, ...config } = storedClientConfig({
    client_id: 'template',
    client_name: 'Filler client',
    token_endpoint_auth_method: 'client_secret_basic',
    client_secret: 'filler-secret-not-used',
    grant_types: ['client_credentials'],
    scope: 'documents:read',
    audience: 'api://resource',
  } as Parameters<typeof storedClientConfig>[0])
  await pg.query(
    `INSERT INTO clients (client_id, config, secret_hash)
     SELECT 'fill-client-' || g, jsonb_set($1::jsonb, '{client_id}', to_jsonb('fill-client-' || g)), $2
     FROM generate_series(1, $3::int) AS g`,
    [JSON.stringify(config), secretHash, clients],
    db,
  )
  await pg.query('VACUUM ANALYZE users', [], db)
  await pg.query('VACUUM ANALYZE clients', [], db)
}

async function count(pg: PostgresServer, db: string, table: 'users' | 'clients'): Promise<number> {
  return Number((await pg.query(`SELECT count(*) AS n FROM ${table}`, [], db)).rows[0].n)
}

/** `gatehouse users import -` of `lines`, with DATABASE_URL and REDIS_URL as an operator runs it, timed (from run() to its exit status). */
async function importRun(pg: PostgresServer, redisUrl: string, lines: number, hash: string, runNo: number): Promise<Sample> {
  const db = `import_${runNo}`
  const url = await pg.createDatabase(db)
  await migrateDatabase(url)
  const body = Array.from({ length: lines }, (_, i) => JSON.stringify({ username: `imported-${i}`, email: `imported-${i}@example.com`, password_hash: hash, roles: ['user'] })).join('\n') + '\n'
  let stderr = ''
  let stdout = ''
  const started = process.hrtime.bigint()
  const code = await gatehouse(['users', 'import', '-'], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    stdin: Readable.from([body]),
    env: { DATABASE_URL: url, REDIS_URL: redisUrl, LOG_LEVEL: 'warn', GATEHOUSE_ACTOR: 'bench', PATH: process.env.PATH ?? '' },
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const imported = await count(pg, db, 'users')
  if (code !== 0 || imported !== lines) throw new Error(`users import: exit ${code}, ${imported} of ${lines} users in the database: ${stdout} ${stderr.slice(0, 2000)}`)
  return { rate: imported / seconds, count: imported, errors: 0 }
}

export const directoryScaleScenario: Scenario = {
  name: 'directory-scale',
  title: 'auth service on PostgreSQL: 1,000,000 users and 10,000 clients vs 8 users; users import rate',
  optIn: true,
  async run(settings: BenchSettings): Promise<ScenarioResult> {
    const { placement, log } = settings
    const size = settings.quick ? QUICK : FULL
    const scope = new Scope()
    try {
      log('directory-scale: starting postgresql')
      const pg = await startPostgres({ settings: PG_SETTINGS })
      scope.add(() => pg.stop())
      const [bigUrl, smallUrl] = [await pg.createDatabase('big'), await pg.createDatabase('small')]
      await migrateDatabase(bigUrl)
      await migrateDatabase(smallUrl)
      log(`directory-scale: filling ${size.users} users and ${size.clients} clients`)
      const fillStarted = Date.now()
      await fill(pg, 'big', size.users, size.clients)
      const fillSeconds = (Date.now() - fillStarted) / 1000
      log(`directory-scale: filled in ${fillSeconds.toFixed(0)} s; starting redis ×2, auth ×2`)

      const [redisBig, redisSmall] = await Promise.all([privateRedis(scope), privateRedis(scope)])
      // The config file seeds both databases at start (the 8 benchmark users, the 2 clients).
      const [big, small, loader] = await Promise.all([
        startAuth(scope, { redisUrl: redisBig.url, cpu: placement.server, env: { DATABASE_URL: bigUrl } }),
        startAuth(scope, { redisUrl: redisSmall.url, cpu: placement.server, env: { DATABASE_URL: smallUrl } }),
        scope.own(Loader.start('load (directory-scale)', placement.load)),
      ])
      const users = { big: await count(pg, 'big', 'users'), small: await count(pg, 'small', 'users') }
      const clients = { big: await count(pg, 'big', 'clients'), small: await count(pg, 'small', 'clients') }

      const password = (name: string, server: ServerHandle, n: number): Variant => ({
        name,
        what: `POST /token password grant, ${n.toLocaleString('en')} users in PostgreSQL (${USERS.length} in parallel)`,
        run: (seconds) => withCpu(server.pid, async () => sampleOf(await loader.run({ ...passwordLogins(server), seconds }))),
      })
      const cc = (name: string, server: ServerHandle, n: number): Variant => ({
        name,
        what: `POST /token client_credentials, ${n.toLocaleString('en')} clients in PostgreSQL`,
        run: (seconds) => withCpu(server.pid, async () => sampleOf(await loader.run({ ...ccRequest(server, settings.connections), seconds }))),
      })
      const variants: Variant[] = [
        password('password-1m', big, users.big),
        password('password-8', small, users.small),
        cc('cc-1m', big, clients.big),
        cc('cc-8', small, clients.small),
      ]
      const samples = await measureRounds(variants, settings)
      const measurements = variants.map((v) => toMeasurement(v, samples.get(v.name)!))
      const ratios = [
        ratio('13a', `password grant, ${users.big.toLocaleString('en')} users / ${users.small}`, samples, 'password-1m', 'password-8', 0.95),
        ratio('13b', `client_credentials, ${clients.big.toLocaleString('en')} clients / ${clients.small}`, samples, 'cc-1m', 'cc-8', 0.95),
      ]
      await Promise.all([big.child.stop(), small.child.stop()])

      log(`directory-scale: users import, ${size.importLines} lines × ${size.importRuns}`)
      const importHash = await hashPassword('imported-password-not-used')
      const importVariant: Variant = {
        name: 'import',
        what: `gatehouse users import: ${size.importLines.toLocaleString('en')} JSON lines into an empty PostgreSQL database, users/s`,
        unit: 'ops/s',
        run: () => Promise.reject(new Error('measured apart')),
      }
      const importSamples: Sample[] = []
      for (let i = 0; i < size.importRuns; i++) {
        const s = await importRun(pg, redisSmall.url, size.importLines, importHash, i)
        log(`  import ${i + 1}/${size.importRuns}: ${s.rate.toFixed(0)} users/s`)
        importSamples.push(s)
      }
      measurements.push(toMeasurement(importVariant, importSamples))

      const checks = ranChecks('directory-scale', measurements)
      checks.push({
        name: 'directory-scale: the databases hold what they should',
        ok: users.big === size.users + USERS.length && users.small === USERS.length && clients.big === size.clients + 2 && clients.small === 2,
        detail: `users ${users.big} / ${users.small}, clients ${clients.big} / ${clients.small}`,
      })
      const bigBytes = Number((await pg.query("SELECT pg_total_relation_size('users') AS n", [], 'big')).rows[0].n)
      const facts = {
        users_big: users.big,
        users_small: users.small,
        clients_big: clients.big,
        clients_small: clients.small,
        fill_seconds: fillSeconds,
        users_table_mb: bigBytes / 1024 / 1024,
        cc_client: CC_CLIENT.id,
      }
      return { name: 'directory-scale', measurements, ratios, checks, facts }
    } finally {
      await scope.close()
    }
  },
}
