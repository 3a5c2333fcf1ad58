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
  }
  const compose = parse(text, { merge: true }) as { services: Record<string, Service> }
  const { redis, auth, resource, keygen } = compose.services
  t.ok(redis && auth && resource && keygen, 'redis, keygen, auth and resource')
  t.match(redis?.healthcheck?.test, ['CMD', 'redis-cli', 'ping'], 'Redis has a healthcheck')
  t.same(redis?.ports, undefined, 'Redis is not published')
  t.match(auth?.depends_on, { redis: { condition: 'service_healthy' }, keygen: { condition: 'service_completed_successfully' } })
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
  t.match(keygenScript, /cookie-secret refresh-token-secret[\s\S]*randomBytes\(32\)/, 'keygen generates both secrets with node:crypto')
  t.ok(keygenScript.indexOf('randomBytes') < keygenScript.indexOf('keys generate'), 'secrets are written before `gatehouse keys generate` reads its configuration')
  t.equal(keygen?.image, auth?.image, 'the key generator is the auth image')
  t.ok(keygen?.volumes?.some((v) => v.startsWith('signing-keys:/keys')) && auth?.volumes?.includes('signing-keys:/keys:ro'), 'keys pass through a volume, read-only for the service')
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
  const ignore = await readFile(join(root, '.dockerignore'), 'utf8')
  for (const entry of ['**/node_modules', '**/dist', '.git']) t.match(ignore, new RegExp(`^${entry.replace(/[*.]/g, '\\$&')}$`, 'm'), `.dockerignore has ${entry}`)
})
