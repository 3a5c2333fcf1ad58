/**
 * Static checks of what `docker compose up` and `docker build` read (issue 6): the compose file
 * passes `docker-compose config -q` and runs the stack the production way; the Dockerfile passes
 * both linters and builds non-root, production-only images. Each checker is also shown to reject
 * a broken input, so a silently passing tool cannot hide a regression.
 */
import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { run } from './run.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = (name: string) => join(root, 'node_modules/.bin', name)

t.test('docker-compose.yml', async (t) => {
  // The secrets have no default in the file (a published one would be everyone's): keygen generates
  // them into the keys volume unless the operator sets their own, so nothing needs to be set.
  const secrets = { ...process.env, COOKIE_SECRET: 'c'.repeat(32), REFRESH_TOKEN_SECRET: 'r'.repeat(32) }
  const unset = { ...process.env }
  delete unset.COOKIE_SECRET
  delete unset.REFRESH_TOKEN_SECRET
  const check = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, timeoutMs: 60_000, env: unset })
  if (check.code === null) t.fail(`docker-compose is not installed (scripts/test.sh installs it: apt-get install docker-compose): ${check.stderr}`)
  t.equal(check.code, 0, `docker-compose config -q (no secrets set): ${check.stderr}`)
  const own = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: root, timeoutMs: 60_000, env: secrets })
  t.equal(own.code, 0, own.stderr)
  t.match(own.stdout, /COOKIE_SECRET: c{32}\n/, "the operator's own secret is passed on")

  const text = await readFile(join(root, 'docker-compose.yml'), 'utf8')
  const broken = await mkdtemp(join(tmpdir(), 'gatehouse-compose-'))
  t.teardown(() => rm(broken, { recursive: true, force: true }))
  await writeFile(join(broken, 'docker-compose.yml'), text.replace('condition: service_healthy', 'condition: service_healty'))
  const bad = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: broken, timeoutMs: 60_000, env: secrets })
  t.not(bad.code, 0, 'and it rejects a misspelt depends_on condition')

  type Service = {
    image?: string
    build?: { dockerfile?: string; target?: string }
    ports?: string[]
    environment?: Record<string, string>
    depends_on?: Record<string, { condition: string }>
    healthcheck?: { test?: string[]; disable?: boolean }
    volumes?: string[]
    read_only?: boolean
    cap_drop?: string[]
    command?: string[]
    security_opt?: string[]
  }
  const compose = parse(text, { merge: true }) as { services: Record<string, Service> }
  const { redis, auth, resource, keygen, postgres, migrate } = compose.services
  t.ok(redis && auth && resource && keygen && postgres && migrate, 'redis, postgres, keygen, migrate, auth and resource')
  t.match(redis?.healthcheck?.test, ['CMD', 'redis-cli', 'ping'], 'Redis has a healthcheck')
  t.same(redis?.ports, undefined, 'Redis is not published')
  t.match(auth?.depends_on, {
    redis: { condition: 'service_healthy' },
    keygen: { condition: 'service_completed_successfully' },
    postgres: { condition: 'service_healthy' },
    migrate: { condition: 'service_completed_successfully' },
  }, 'auth starts once Redis and PostgreSQL are healthy, the secrets generated and the migrations applied')
  t.match(resource?.depends_on, { redis: { condition: 'service_healthy' }, auth: { condition: 'service_healthy' } })
  for (const [name, svc] of [['auth', auth], ['resource', resource]] as const) {
    t.ok(svc?.ports?.length, `${name} is published`)
    for (const p of svc?.ports ?? []) t.match(p, /^127\.0\.0\.1:/, `${name} port ${p} is bound to 127.0.0.1`)
    t.equal(svc?.environment?.NODE_ENV, 'production', `${name} runs in production mode`)
    t.match(svc?.healthcheck?.test, ['CMD', 'node', '-e', /fetch\(/], `${name} healthcheck uses node, not curl`)
    t.equal(svc?.build?.dockerfile, 'infra/Dockerfile')
    t.equal(svc?.build?.target, name)
    t.equal(svc?.read_only, true, `${name} has a read-only root filesystem`)
    t.same(svc?.cap_drop, ['ALL'])
  }
  t.match(auth?.environment, {
    SIGNING_KEYS_FILE: '/keys/signing-keys.json',
    REDIS_URL: 'redis://redis:6379',
    AUTH_CONFIG_FILE: /\.json$/,
    COOKIE_SECRET: '${COOKIE_SECRET:-}',
    COOKIE_SECRET_FILE: '/keys/cookie-secret',
    REFRESH_TOKEN_SECRET: '${REFRESH_TOKEN_SECRET:-}',
    REFRESH_TOKEN_SECRET_FILE: '/keys/refresh-token-secret',
  }, "keys from a file, Redis, an explicit config file, secrets from the operator or else generated into the keys volume (no published default)")
  const keygenScript = keygen?.command?.join(' ') ?? ''
  t.match(keygenScript, /\/keys\/cookie-secret \/keys\/refresh-token-secret [\s\S]*randomBytes\(32\)/, 'keygen generates both secrets with node:crypto')
  t.ok(keygenScript.indexOf('randomBytes') < keygenScript.indexOf('keys generate'), 'secrets are written before `gatehouse keys generate` reads its configuration')
  t.equal(keygen?.image, auth?.image, 'the key generator is the auth image')
  t.ok(keygen?.volumes?.some((v) => v.startsWith('signing-keys:/keys')) && auth?.volumes?.includes('signing-keys:/keys:ro'), 'keys pass through a volume, read-only for the service')

  // PostgreSQL (issue 13): the official image, its password generated, never published.
  t.match(postgres?.image, /^postgres:15(-alpine)?$/, 'PostgreSQL from the official image')
  t.same(postgres?.ports, undefined, 'PostgreSQL is not published')
  t.match(postgres?.healthcheck?.test, ['CMD', 'pg_isready', '--host=127.0.0.1'], 'PostgreSQL has a pg_isready healthcheck, over TCP')
  t.ok(postgres?.volumes?.includes('postgres-data:/var/lib/postgresql/data'), 'its data in a named volume')
  t.match(postgres?.environment, { POSTGRES_USER: 'gatehouse', POSTGRES_DB: 'gatehouse', POSTGRES_PASSWORD_FILE: '/database-secret/postgres-password' }, 'its password from the file keygen generates')
  t.notOk(postgres?.environment && 'POSTGRES_PASSWORD' in postgres.environment, 'no POSTGRES_PASSWORD value in the file')
  t.notOk(postgres?.environment && 'POSTGRES_HOST_AUTH_METHOD' in postgres.environment, 'and no trust authentication')
  t.match(postgres?.depends_on, { keygen: { condition: 'service_completed_successfully' } }, 'PostgreSQL starts once its password exists')
  t.match(keygenScript, /\/database-secret\/postgres-password[\s\S]*randomBytes\(32\)/, 'keygen generates the database password with node:crypto')
  t.match(keygenScript, /postgres:\/\/gatehouse:%s@postgres:5432\/gatehouse' [^>]*> \/database-secret\/url\.tmp/, 'and the URL with it that the auth containers read')
  t.ok(keygenScript.indexOf('/database-secret/url') < keygenScript.indexOf('keys generate'), 'before `gatehouse keys generate` reads its configuration')
  t.equal(auth?.environment?.DATABASE_URL, '${DATABASE_URL:-}', 'no URL (nor password) written in the file: an operator\'s DATABASE_URL wins')
  t.equal(auth?.environment?.DATABASE_URL_FILE, '/database-secret/url', 'the auth service uses PostgreSQL through the generated URL')
  t.notOk(auth?.environment && 'DATABASE_MIGRATE' in auth.environment, 'the service does not migrate at start: the migrate step does')
  t.ok(auth?.volumes?.includes('database-secret:/database-secret:ro') && postgres?.volumes?.includes('database-secret:/database-secret:ro'), 'the database secret is read-only for the service and for PostgreSQL')
  t.same(migrate?.command, ['gatehouse', 'db', 'migrate'], 'a one-shot migrate step runs `gatehouse db migrate`')
  t.equal(migrate?.image, auth?.image, 'from the auth image (the migrations ship in it)')
  t.same(migrate?.environment, auth?.environment, 'with the service\'s environment')
  t.match(migrate?.depends_on, { postgres: { condition: 'service_healthy' } }, 'once PostgreSQL is healthy')
  t.equal(migrate?.read_only, true, 'migrate has a read-only root filesystem')
  t.same(migrate?.cap_drop, ['ALL'])
})

t.test('infra/Dockerfile', async (t) => {
  const dockerfile = join(root, 'infra/Dockerfile')
  const syntax = await run(bin('dockerfile-utils'), ['lint', dockerfile], { timeoutMs: 60_000 })
  t.equal(syntax.code, 0, `dockerfile-utils lint: ${syntax.stdout}${syntax.stderr}`)
  const practices = await run(bin('dockerfilelint'), [dockerfile], { timeoutMs: 60_000 })
  t.equal(practices.code, 0, `dockerfilelint (exit code = findings): ${practices.stdout}${practices.stderr}`)

  const tmp = await mkdtemp(join(tmpdir(), 'gatehouse-dockerfile-'))
  t.teardown(() => rm(tmp, { recursive: true, force: true }))
  await writeFile(join(tmp, 'Dockerfile'), 'FROM node:20-slim\nHEALTHCHEK CMD true\nEXPOSE 99999\n')
  t.not((await run(bin('dockerfile-utils'), ['lint', join(tmp, 'Dockerfile')])).code, 0, 'dockerfile-utils rejects a broken Dockerfile')
  t.not((await run(bin('dockerfilelint'), [join(tmp, 'Dockerfile')])).code, 0, 'dockerfilelint rejects it too')

  const text = await readFile(dockerfile, 'utf8')
  const stages = text.split(/^FROM /m).slice(1).map((s) => ({ header: s.split('\n')[0] ?? '', body: s }))
  t.same(stages.map((s) => s.header), ['node:20-slim AS build', 'node:20-slim AS resource', 'node:20-slim AS auth'], 'a build stage and two runtime targets')
  t.match(stages[0]?.body, /deploy --prod/, 'runtime dependencies come from `pnpm deploy --prod` (no dev dependencies)')
  for (const stage of stages.slice(1)) {
    t.match(stage.body, /^USER 1000:1000$/m, `${stage.header}: a numeric non-root user`)
    t.match(stage.body, /NODE_ENV=production/, `${stage.header}: NODE_ENV=production`)
    t.match(stage.body, /^HEALTHCHECK .*\n?.*CMD \["node", "-e", "fetch\(/m, `${stage.header}: a HEALTHCHECK without curl`)
    t.notMatch(stage.body.replace(/^#.*$/gm, ''), /curl|wget/, `${stage.header}: no curl or wget`)
  }
  t.match(stages[0]?.body, /&& ls \/out\/auth\/migrations\/\*\.sql\n/, 'the build fails unless the auth service\'s migrations are in what its image copies')
  t.match(stages[2]?.body, /COPY --from=build \/out\/auth \/app\n/, 'the auth image copies them (/app/migrations, beside dist/)')
  t.match(stages[0]?.body, /&& ls \/out\/auth\/assets\/passkeys\.js \/out\/auth\/node_modules\/@simplewebauthn\/browser\/dist\/bundle\/index\.umd\.min\.js /, 'the build fails unless the passkey scripts are in what the auth image copies (/app/assets, the browser bundle)')
  t.match(stages[2]?.body, /mkdir \/keys \/database-secret && chown 1000:1000 \/keys \/database-secret/, 'the volume mount points keygen writes are the service user\'s')
  const ignore = await readFile(join(root, '.dockerignore'), 'utf8')
  for (const entry of ['**/node_modules', '**/dist', '.git']) t.match(ignore, new RegExp(`^${entry.replace(/[*.]/g, '\\$&')}$`, 'm'), `.dockerignore has ${entry}`)
})
