/**
 * The container smoke test (issue 6): on this machine, with a Docker engine of its own, build the
 * images from infra/Dockerfile, bring up docker-compose.yml unchanged, and walk the seed's flow
 * against the containers: password login, an API call, refresh, reuse detection. Then PostgreSQL
 * (issue 13): the migration step applied the schema, the database wants the generated password,
 * a user added with `docker compose exec auth gatehouse users add` is a row in PostgreSQL, signs
 * in, and still does after `docker compose restart auth`, when a change made in PostgreSQL alone is
 * what the service sees. Then stop the stack (the services must exit 0 on SIGTERM as PID 1),
 * remove it and stop the engine.
 *
 * CI has no image registry, so the base images the Dockerfile and compose file name are first made
 * from this machine's own node, redis and PostgreSQL (make-base-images.sh). The engine runs without a default
 * bridge (no iptables here), so `docker build` uses the host network; compose creates its own
 * network for the stack, as it does for a user. If Docker cannot run, this test fails, it does not
 * skip: scripts/test.sh installs docker-compose (which brings docker.io) and busybox-static.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeProtectedHeader } from 'jose'
import { freePort } from '@gatehouse/test-harness'
import { run, type RunResult } from './run.js'

// Building the images (dependencies from the registry, a TypeScript build) is the long part; on a
// busy 2-core machine the whole run, base images and PostgreSQL included, took 15 minutes.
t.setTimeout(25 * 60_000)

const root = fileURLToPath(new URL('../..', import.meta.url))
const docker = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker'
const CLI = 'Basic ' + Buffer.from('cli:cli-secret').toString('base64')

function explain(step: string, r: RunResult): string {
  return `${step} exited ${String(r.code)}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`
}

const t0 = Date.now()
/** Progress on stderr, so a slow or stuck step shows in the CI log. */
function progress(step: string): void {
  process.stderr.write(`# compose-smoke ${((Date.now() - t0) / 1000).toFixed(1)} s: ${step}\n`)
}

async function must(step: string, r: Promise<RunResult>): Promise<RunResult> {
  const result = await r
  progress(`${step} (exit ${String(result.code)})`)
  if (result.code !== 0) throw new Error(explain(step, result))
  return result
}

/** fetch with a bound: a published port may accept a connection before the container answers. */
async function get(url: string, init: RequestInit = {}): Promise<Response> {
  return await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await probe()
      if (ok(v)) return v
      last = v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last instanceof Error ? last.message : JSON.stringify(last)}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

interface Engine {
  env: NodeJS.ProcessEnv
  stop(): Promise<void>
}

/**
 * A private Docker engine: data, state and socket in a temporary directory. Stopped by its pid
 * (SIGTERM: it stops its containers; SIGKILL after a bound), and by a watchdog if this process
 * dies first (`sh` blocked reading a pipe that only this process holds).
 */
async function startEngine(): Promise<Engine> {
  for (const tool of ['dockerd', 'docker-compose', 'busybox']) {
    const found = await run('sh', ['-c', `command -v ${tool}`])
    if (found.code !== 0) throw new Error(`${tool} is not installed: the container smoke test needs it (scripts/test.sh: apt-get install docker-compose busybox-static)`)
  }
  if (process.getuid?.() !== 0) throw new Error('the container smoke test starts its own Docker engine and needs root')
  const dir = await mkdtemp(join(tmpdir(), 'gh-docker-'))
  const socket = join(dir, 'docker.sock')
  const logFd = openSync(join(dir, 'dockerd.log'), 'a')
  const dockerd: ChildProcess = spawn(
    'dockerd',
    ['--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '-H', `unix://${socket}`, '--pidfile', join(dir, 'dockerd.pid'),
      '--bridge=none', '--iptables=false', '--ip6tables=false'],
    { stdio: ['ignore', logFd, logFd] },
  )
  closeSync(logFd)
  const exited = new Promise<void>((resolve) => dockerd.once('exit', () => resolve()))
  const watchdog = spawn('sh', ['-c', 'read _ ; kill -TERM "$1" 2>/dev/null; sleep 30; kill -KILL "$1" 2>/dev/null', 'dockerd-watchdog', String(dockerd.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  })
  watchdog.unref()
  ;(watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.()
  watchdog.on('error', () => undefined)
  watchdog.stdin?.on('error', () => undefined)
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}` }
  const stop = async (): Promise<void> => {
    if (dockerd.exitCode === null && dockerd.signalCode === null) {
      dockerd.kill('SIGTERM')
      const timer = setTimeout(() => dockerd.kill('SIGKILL'), 30_000)
      await exited
      clearTimeout(timer)
    }
    watchdog.kill('SIGKILL')
    // dockerd leaves its network namespace file mounted.
    await run('umount', [join(dir, 'exec/netns/default')], { timeoutMs: 10_000 })
    await rm(dir, { recursive: true, force: true }).catch(() => undefined)
  }
  try {
    await until('the Docker engine', async () => (await run(docker, ['version', '--format', '{{.Server.Version}}'], { env, timeoutMs: 10_000 })).code, (c) => c === 0, 60_000)
  } catch (err) {
    const log = await readFile(join(dir, 'dockerd.log'), 'utf8').catch(() => '')
    await stop()
    throw new Error(`${(err as Error).message}\ndockerd log:\n${log.slice(-3000)}`)
  }
  progress('Docker engine ready')
  return { env, stop }
}

/**
 * A copy of the build context as git sees it (tracked and untracked, not ignored files), so both
 * images are built from one snapshot even while the working tree changes; undefined outside git.
 */
async function snapshotContext(): Promise<string | undefined> {
  if ((await run('git', ['rev-parse', '--is-inside-work-tree'], { cwd: root, timeoutMs: 10_000 })).code !== 0) return undefined
  const dir = await mkdtemp(join(tmpdir(), 'gh-context-'))
  await must('snapshot of the build context', run('sh', ['-c', 'git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$1" -xf -', 'snapshot', dir], { cwd: root, timeoutMs: 120_000 }))
  return dir
}

async function token(base: string, params: Record<string, string>) {
  const res = await get(`${base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: CLI },
    body: new URLSearchParams(params),
  })
  return { status: res.status, body: (await res.json()) as Record<string, string> }
}

async function me(base: string, accessToken: string) {
  const res = await get(`${base}/me`, { headers: { authorization: `Bearer ${accessToken}` } })
  return { status: res.status, www: res.headers.get('www-authenticate'), body: (await res.json()) as Record<string, unknown> }
}

t.test('docker compose up: the stack starts healthy and the seed flow works against it', async (t) => {
  const engine = await startEngine()
  const [authPort, resourcePort] = [await freePort(), await freePort()]
  const env = {
    ...engine.env,
    COMPOSE_PROJECT_NAME: `ghsmoke${Date.now().toString(36)}`,
    AUTH_PORT: String(authPort),
    RESOURCE_PORT: String(resourcePort),
    // No secrets set: keygen generates them into the keys volume (docker-compose.yml).
  }
  const compose = (args: string[], timeoutMs = 180_000, input?: string) => run('docker-compose', ['-f', 'docker-compose.yml', ...args], { env, cwd: root, timeoutMs, ...(input === undefined ? {} : { input }) })
  let context: string | undefined
  // One teardown, in order: the stack, then the engine, then the build context.
  t.teardown(async () => {
    const down = await compose(['down', '-v', '--remove-orphans'], 120_000)
    progress(`docker-compose down (exit ${String(down.code)})`)
    await engine.stop()
    progress('Docker engine stopped')
    if (context) await rm(context, { recursive: true, force: true })
  })

  await must('make-base-images.sh', run('bash', [join(root, 'infra/test/make-base-images.sh'), docker], { env, timeoutMs: 600_000 }))
  context = await snapshotContext()
  for (const target of ['auth', 'resource']) {
    await must(
      `docker build --target ${target}`,
      run(docker, ['build', '--network', 'host', '-f', 'infra/Dockerfile', '--target', target, '-t', `gatehouse/${target}:local`, '.'], { env, cwd: context ?? root, timeoutMs: 10 * 60_000 }),
    )
  }
  const up = await compose(['up', '-d', '--no-build'])
  progress(`docker-compose up -d (exit ${String(up.code)})`)
  if (up.code !== 0) {
    const logs = await compose(['logs', '--no-color', '--tail', '60'])
    throw new Error(`${explain('docker-compose up', up)}\n${logs.stdout}`)
  }

  const auth = `http://127.0.0.1:${authPort}`
  const api = `http://127.0.0.1:${resourcePort}`
  await until('the resource service to be ready', async () => (await get(`${api}/readyz`)).status, (s) => s === 200, 90_000)
  progress('the stack is ready')
  // Docker marks a container healthy at its next HEALTHCHECK run, up to an interval after /readyz
  // first answers 200.
  const healthy = (out: string) => ['auth', 'resource', 'redis', 'postgres'].every((svc) => new RegExp(`_${svc}_1 .*Up \\(healthy\\)`).test(out))
  const ps = await until('every service to be marked healthy', async () => await compose(['ps']), (r) => r.code === 0 && healthy(r.stdout), 60_000).catch(async () => await compose(['ps']))
  t.match(ps.stdout, /_auth_1 .*Up \(healthy\)/, 'auth is healthy (its HEALTHCHECK passes)')
  t.match(ps.stdout, /_resource_1 .*Up \(healthy\)/, 'resource is healthy')
  t.match(ps.stdout, /_redis_1 .*Up \(healthy\)/, 'redis is healthy')
  t.match(ps.stdout, /_postgres_1 .*Up \(healthy\)/, 'postgres is healthy')
  t.match(ps.stdout, /_keygen_1 .*Exit 0/, 'the key generator ran once and exited 0')
  t.match(ps.stdout, /_migrate_1 .*Exit 0/, 'the migration step ran before the auth service and exited 0')
  t.match((await compose(['logs', '--no-color', 'keygen'])).stdout, /wrote \/keys\/signing-keys\.json with key/, 'with `gatehouse keys generate`')

  for (const svc of ['auth', 'resource']) {
    const id = (await must('docker-compose ps -q', compose(['ps', '-q', svc]))).stdout.trim()
    const user = (await must('docker inspect', run(docker, ['inspect', '-f', '{{.Config.User}}', id], { env }))).stdout.trim()
    t.equal(user, '1000:1000', `${svc} runs as a non-root user`)
    const cfgEnv = (await must('docker inspect', run(docker, ['inspect', '-f', '{{json .Config.Env}}', id], { env }))).stdout
    t.match(cfgEnv, /"NODE_ENV=production"/, `${svc} runs with NODE_ENV=production`)
  }

  // The README walk-through, against the containers.
  const discovery = (await (await get(`${auth}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string }
  t.equal(discovery.issuer, auth, 'the issuer is the published address')
  const jwks = (await (await get(`${auth}/jwks.json`)).json()) as { keys: Array<{ kid: string; d?: string }> }
  t.equal(jwks.keys.length, 1, 'the generated key is published')
  t.notOk(jwks.keys[0]?.d, 'without its private part')

  const login = await token(auth, { grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.status, 200, 'password login as alice with client cli')
  t.equal(decodeProtectedHeader(login.body.access_token!).kid, jwks.keys[0]?.kid, 'signed with the key from the volume')
  const keys = await must('docker-compose run keygen gatehouse keys list', compose(['run', '--rm', '-T', 'keygen', 'gatehouse', 'keys', 'list']))
  t.match(keys.stdout, new RegExp(`${jwks.keys[0]?.kid}\\s+active`), 'the admin command line runs in the keygen container on the same key file (docs/deployment.md)')
  const first = await me(api, login.body.access_token!)
  t.equal(first.status, 200, 'GET /me on the resource service')
  t.match(first.body, { roles: ['admin'], client_id: 'cli' })
  t.equal((await get(`${api}/me`)).status, 401, 'no token: 401')

  const r1 = await token(auth, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token! })
  t.equal(r1.status, 200, 'refresh')
  t.not(r1.body.refresh_token, login.body.refresh_token, 'a new refresh token (rotation)')
  const r2 = await token(auth, { grant_type: 'refresh_token', refresh_token: r1.body.refresh_token! })
  t.equal(r2.status, 200)
  t.equal((await me(api, r2.body.access_token!)).status, 200, 'the newest access token works')
  // Two generations back: outside any grace window, so reuse, and the family is revoked.
  const reuse = await token(auth, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token! })
  t.equal(reuse.status, 400)
  t.equal(reuse.body.error, 'invalid_grant', 'reuse detection: invalid_grant')
  t.equal((await token(auth, { grant_type: 'refresh_token', refresh_token: r2.body.refresh_token! })).body.error, 'invalid_grant', 'the current refresh token is revoked too')
  const denied = await until('the revocation to reach the resource service', () => me(api, r2.body.access_token!), (r) => r.status === 401, 10_000)
  t.match(denied.www, /error="invalid_token"/, 'the resource service drops the revoked family\'s access token (revocation feed through Redis)')
  t.match((await compose(['logs', '--no-color', 'auth'])).stdout, /"event":"refresh_token.reuse_detected"/, 'the reuse is logged')

  // PostgreSQL: users, clients, resources and the audit trail (DESIGN §10.2).
  const psql = (sql: string) => compose(['exec', '-T', 'postgres', 'psql', '--username=gatehouse', '--dbname=gatehouse', '-v', 'ON_ERROR_STOP=1', '--quiet', '--no-align', '--tuples-only', '--command', sql])
  t.match((await compose(['logs', '--no-color', 'migrate'])).stdout, /applied 0001_directory/, 'the schema was applied by `gatehouse db migrate`')
  t.equal((await must('psql: migrations', psql('SELECT name FROM gatehouse_migrations ORDER BY id'))).stdout.trim().split('\n')[0], '0001_directory', 'and recorded by node-pg-migrate')
  const pgId = (await must('docker-compose ps -q', compose(['ps', '-q', 'postgres']))).stdout.trim()
  const pgEnv = (await must('docker inspect', run(docker, ['inspect', '-f', '{{json .Config.Env}}', pgId], { env }))).stdout
  t.notMatch(pgEnv, /"POSTGRES_PASSWORD=/, 'no database password in the configuration: POSTGRES_PASSWORD_FILE, generated by keygen')
  const authId = (await must('docker-compose ps -q', compose(['ps', '-q', 'auth']))).stdout.trim()
  const authEnv = (await must('docker inspect', run(docker, ['inspect', '-f', '{{json .Config.Env}}', authId], { env }))).stdout
  t.match(authEnv, /"DATABASE_URL_FILE=\/database-secret\/url"/, 'the auth service reads its database URL from the file keygen wrote')
  t.notMatch(authEnv, /postgres:\/\//, 'no database URL (nor password) in its environment')
  // Over the stack's network (not the container's loopback) the server wants the password.
  const network = (sh: string) => compose(['exec', '-T', 'postgres', 'sh', '-c', `${sh} psql -w --host="$(hostname -i)" --username=gatehouse --dbname=gatehouse -At -c 'SELECT 1'`])
  const refused = await network('')
  t.not(refused.code, 0, 'a network connection without the password is refused')
  t.match(refused.stderr, /password/, `for want of a password: ${refused.stderr.trim()}`)
  t.equal((await network('PGPASSWORD="$(cat /database-secret/postgres-password)"')).stdout.trim(), '1', 'and accepted with the generated one')

  // Two users added the operator's way; one of them then disabled in PostgreSQL alone.
  const passwords = { carol: 'carol-compose-password-1', dave: 'dave-compose-password-1' }
  for (const [name, password] of Object.entries(passwords)) {
    await must(`gatehouse users add ${name}`, compose(['exec', '-T', 'auth', 'gatehouse', 'users', 'add', name, '--password-stdin', '--role', 'user'], 60_000, password))
  }
  const rows = await must('psql: users', psql("SELECT username, roles, disabled FROM users WHERE username IN ('carol', 'dave') ORDER BY username"))
  t.same(rows.stdout.trim().split('\n'), ['carol|{user}|f', 'dave|{user}|f'], '`docker compose exec auth gatehouse users add` writes rows in PostgreSQL')
  const hashes = await must('psql: hashes', psql("SELECT password_hash FROM users WHERE username = 'carol'"))
  t.match(hashes.stdout.trim(), /^\$argon2id\$/, 'the password stored as an argon2id hash')
  t.equal((await token(auth, { grant_type: 'password', username: 'carol', password: passwords.carol })).status, 200, 'carol signs in')
  await must('psql: disable dave', psql("UPDATE users SET disabled = true, updated_at = now() WHERE username = 'dave'"))

  await must('docker-compose restart auth', compose(['restart', 'auth'], 120_000))
  await until('the auth service to be ready again', async () => (await get(`${auth}/readyz`)).status, (s) => s === 200, 90_000)
  progress('auth restarted')
  t.equal((await token(auth, { grant_type: 'password', username: 'carol', password: passwords.carol })).status, 200, 'after `docker compose restart auth` carol still signs in: the user lives in PostgreSQL')
  const dave = await token(auth, { grant_type: 'password', username: 'dave', password: passwords.dave })
  t.match({ status: dave.status, error: dave.body.error }, { status: 400, error: 'invalid_grant' }, 'and dave, disabled in PostgreSQL alone, is refused: the service reads its users from PostgreSQL')
  const listed = await must('gatehouse users list', compose(['exec', '-T', 'auth', 'gatehouse', 'users', 'list', '--json'], 60_000))
  t.match(listed.stdout, /"username":\s*"carol"/, '`gatehouse users list` shows the user after the restart')

  // docker stop sends SIGTERM to PID 1 (node): a clean exit is a graceful shutdown.
  await must('docker-compose stop', compose(['stop', '-t', '20'], 120_000))
  for (const svc of ['auth', 'resource']) {
    const id = (await must('docker-compose ps -q', compose(['ps', '-q', svc]))).stdout.trim()
    const code = (await must('docker inspect', run(docker, ['inspect', '-f', '{{.State.ExitCode}}', id], { env }))).stdout.trim()
    t.equal(code, '0', `${svc} exited 0 on SIGTERM`)
  }
})
