#!/usr/bin/env node
// Runs the services for development (embedded defaults) and stops them all on Ctrl-C: the auth
// service, the resource service, and a second resource service as the reports service
// (api://reports) that the first one calls for its users through token exchange (GET /reports/me).
// Their log lines are shown readable and told apart (scripts/dev-console.mjs); `--json` (or
// `npm start -- --json`) passes the services' JSON lines through untouched.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { devLineFormatter, pipeLines } from './dev-console.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const issuer = process.env.ISSUER ?? 'http://127.0.0.1:4000'
const children = []
let stopping = false
// `npm start -- --json` may pass the `--` through.
const args = process.argv.slice(2).filter((a) => a !== '--')
const json = args.includes('--json')
if (args.some((a) => a !== '--json')) {
  process.stderr.write('usage: node scripts/dev-stack.mjs [--json]   (npm start [-- --json])\n  --json  print the services\' log lines as JSON instead of readable lines\n')
  process.exit(2)
}

function run(name, script, env, colour) {
  const child = spawn(process.execPath, [script], { cwd: root, env: { ...process.env, ...env }, stdio: json ? 'inherit' : ['inherit', 'pipe', 'pipe'] })
  if (!json) {
    const format = devLineFormatter(name, colour)
    pipeLines(child.stdout, process.stdout, format)
    pipeLines(child.stderr, process.stderr, format)
  }
  // 'close', not 'exit': the child's output has been read to its end, so its last lines are not lost.
  const closed = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })))
  closed.then(({ code, signal }) => {
    if (!stopping) {
      process.stderr.write(`${name} exited (${signal ?? code}); stopping the stack\n`)
      stop(1)
    }
  })
  children.push({ child, closed })
}

function stop(code = 0) {
  stopping = true
  for (const { child } of children) child.kill('SIGTERM')
  setTimeout(() => process.exit(code), 2000).unref()
  Promise.all(children.map(({ closed }) => closed)).then(() => process.exit(code))
}

process.on('SIGINT', () => stop(0))
process.on('SIGTERM', () => stop(0))

run('auth', 'services/auth/dist/server.js', { PORT: process.env.AUTH_PORT ?? '4000', ISSUER: issuer }, 'cyan')
const reportsPort = process.env.REPORTS_PORT ?? '4002'
run('resource', 'services/resource/dist/server.js', {
  PORT: process.env.RESOURCE_PORT ?? '4001',
  ISSUER: issuer,
  REPORTS_URL: `http://127.0.0.1:${reportsPort}`,
  EXCHANGE_CLIENT_ID: 'resource-service',
  EXCHANGE_CLIENT_SECRET: 'resource-service-secret',
}, 'magenta')
run('reports', 'services/resource/dist/server.js', { PORT: reportsPort, ISSUER: issuer, AUDIENCE: 'api://reports', OTEL_SERVICE_NAME: 'gatehouse-reports' }, 'yellow')
const api = `http://127.0.0.1:${process.env.RESOURCE_PORT ?? '4001'}`

process.stdout.write(`
Gatehouse development stack
  auth service:     ${issuer}   (discovery: ${issuer}/.well-known/openid-configuration)
  resource service: ${api}
  reports service:  http://127.0.0.1:${reportsPort}   (audience api://reports; /reports/me on the resource service calls it)
  demo users: alice / alice-password (role admin), bob / bob-password
  demo clients: cli / cli-secret (password grant), web / web-secret (browser login),
                reporting-service / reporting-secret (client credentials),
                resource-service / resource-service-secret (token exchange for api://reports)
  first steps (in another shell):
    curl -s -u cli:cli-secret -d grant_type=password -d username=alice -d password=alice-password ${issuer}/token > login.json
    curl -s -H "Authorization: Bearer $(node -p 'require("./login.json").access_token')" ${api}/documents; echo
  more: "Walk-through" in README.md.   Log lines: service, time, level, what happened.   Ctrl-C stops them all.

`)
