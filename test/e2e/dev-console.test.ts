/**
 * The development console (issue 21): `npm start` shows each service's log lines readable and told
 * apart, prints the demo users, clients and first commands once, and `--json` keeps the services'
 * own JSON. The stack is scripts/dev-stack.mjs on free ports, as `npm start` runs it (after the
 * build, which `npm test` has done).
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { eventually, freePort, getJson, postToken } from '@gatehouse/test-harness'

const root = fileURLToPath(new URL('../..', import.meta.url))

interface DevConsole {
  messageOf(log: Record<string, unknown>, messageKey?: string): string
  devLineFormatter(name: string, colour: string, o?: { colorize?: boolean }): (line: string) => string
}
const devConsole = (await import(`${root}/scripts/dev-console.mjs`)) as DevConsole

interface Stack {
  child: ChildProcess
  out: () => string
  auth: string
  api: string
  stop: () => Promise<number | null>
}

async function startStack(t: Test, args: string[] = []): Promise<Stack> {
  const [authPort, apiPort, reportsPort] = [await freePort(), await freePort(), await freePort()]
  const auth = `http://127.0.0.1:${authPort}`
  const child = spawn(process.execPath, [`${root}/scripts/dev-stack.mjs`, ...args], {
    cwd: root,
    // Its own process group: should tap kill this test, the exit hook below still stops the whole stack.
    detached: true,
    env: { ...process.env, ISSUER: auth, AUTH_PORT: String(authPort), RESOURCE_PORT: String(apiPort), REPORTS_PORT: String(reportsPort), NODE_ENV: 'development', LOG_LEVEL: 'info', NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let text = ''
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const killGroup = (): void => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  process.once('exit', killGroup)
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null) child.kill('SIGTERM')
    const code = await exited
    killGroup()
    process.removeListener('exit', killGroup)
    return code
  }
  t.teardown(stop)
  const ready = async (url: string): Promise<number> => (await getJson(`${url}/readyz`)).status
  await eventually('the three services ready', async () => [await ready(auth), await ready(`http://127.0.0.1:${apiPort}`), await ready(`http://127.0.0.1:${reportsPort}`)], (s) => s.every((x) => x === 200), 60_000)
  return { child, out: () => text, auth, api: `http://127.0.0.1:${apiPort}`, stop }
}

t.test('one line: a request, an audit event, anything else, and a colour per service', async (t) => {
  t.equal(devConsole.messageOf({ msg: 'request completed', req: { method: 'POST', url: '/token' }, res: { statusCode: 400 }, responseTime: 3.14159 }), 'POST /token 400 3.1 ms')
  t.equal(devConsole.messageOf({ msg: 'token issued', event: 'token.issued' }), 'token.issued: token issued')
  t.equal(devConsole.messageOf({ msg: 'plain' }), 'plain')
  t.equal(devConsole.messageOf({ msg: 'incoming request', req: { method: 'GET', url: '/jwks.json' } }), 'GET /jwks.json ← incoming request', 'a request line without its reply keeps its URL')
  const multi = devConsole.devLineFormatter('auth', 'cyan', { colorize: false })(JSON.stringify({ level: 50, time: 0, msg: 'boom', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x (y.js:1:1)' } }))
  t.ok(multi.split('\n').filter((l) => l.length > 0).every((l) => l.startsWith('auth ')), 'every line of a multi-line entry names its service')
  const plain = devConsole.devLineFormatter('auth', 'cyan', { colorize: false })
  const line = plain(JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1), pid: 1, hostname: 'h', reqId: 'r-1', event: 'token.issued', client_id: 'cli', msg: 'token issued' }))
  t.match(line, /^auth {5}\[\d\d:\d\d:\d\d\.\d{3}\] INFO: token\.issued: token issued \{"client_id":"cli"\}\n$/)
  t.notMatch(line, /r-1|hostname|pid/, 'the request id, host and pid are left out')
  t.equal(plain('not json {'), 'auth     not json {\n', 'a line that is not JSON passes as it is')
  t.equal(plain('{"broken'), 'auth     {"broken\n')
  t.equal(plain('[1,2]'), 'auth     [1,2]\n')
  const coloured = devConsole.devLineFormatter('resource', 'magenta', { colorize: true })
  t.ok(coloured(JSON.stringify({ level: 50, time: 0, msg: 'x' })).startsWith('\u001b[35mresource \u001b[39m'), 'the service name in its colour')
})

t.test('npm start: readable lines from every service, the banner once, no raw JSON', async (t) => {
  const stack = await startStack(t)
  const login = await postToken(stack.auth, { grant_type: 'password', username: 'alice', password: 'alice-password' })
  t.equal(login.status, 200)
  const at = (login.body as { access_token: string }).access_token
  const docs = await fetch(`${stack.api}/documents`, { headers: { authorization: `Bearer ${at}` } })
  t.equal(docs.status, 200)
  const expected = [
    /^resource +\[[^\]]+\] INFO: GET \/documents 200 [\d.]+ ms$/m,
    /^auth +\[[^\]]+\] INFO: POST \/token 200 [\d.]+ ms$/m,
    /^auth +\[[^\]]+\] INFO: token\.issued: token issued \{.*"grant_type":"password"/m,
    /^reports +\[[^\]]+\] INFO: service\.started/m,
  ]
  // Each service writes through its own pipe: wait until every line has come through.
  await eventually('the lines', async () => stack.out(), (out) => expected.every((re) => re.test(out)))
  const out = stack.out()
  t.match(out, expected[0]!, 'a request in a few words')
  t.match(out, expected[1]!, 'on each service')
  t.match(out, expected[2]!, 'an audit event by its name')
  t.match(out, expected[3]!, 'the third service told apart')
  t.equal(out.split('Gatehouse development stack').length - 1, 1, 'the banner once')
  t.match(out, /demo users: alice \/ alice-password/)
  t.match(out, new RegExp(`curl -s -u cli:cli-secret -d grant_type=password .*${stack.auth}/token`), 'the first command names this stack')
  const lines = out.split('\n').filter((l) => l.length > 0)
  t.same(lines.filter((l) => l.startsWith('{')), [], 'no raw JSON line')
  t.notOk(out.includes(at), 'no token in the console')
  t.equal(await stack.stop(), 0, 'Ctrl-C (SIGTERM) stops the stack cleanly')
})

t.test('npm start -- --json: the services own JSON lines, and a bad argument is refused', async (t) => {
  const stack = await startStack(t, ['--json'])
  await eventually('the started lines', async () => stack.out(), (out) => out.includes('"event":"service.started"'))
  const jsonLines = stack.out().split('\n').filter((l) => l.startsWith('{'))
  t.ok(jsonLines.length >= 3, 'JSON lines pass through')
  const parses = (l: string): boolean => {
    try {
      return typeof JSON.parse(l) === 'object'
    } catch {
      return false
    }
  }
  t.same(jsonLines.filter((l) => !parses(l)), [], 'every line is a JSON object')
  await stack.stop()

  const bad = spawn(process.execPath, [`${root}/scripts/dev-stack.mjs`, '--', '--pretty-please'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  bad.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((resolve) => bad.once('exit', resolve))
  t.equal(code, 2)
  t.match(err, /usage: node scripts\/dev-stack\.mjs \[--json\]/)
})
