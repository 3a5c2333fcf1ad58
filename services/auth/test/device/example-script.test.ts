/**
 * examples/device-login.mjs, as the README runs it: a real process that starts the flow against a
 * listening auth service, prints the code, and polls until the user (here: the in-process page
 * helper) allows it; then the token response on stdout. A denial ends it with a message and
 * status 1.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { DeviceBrowser } from './device-harness.js'

const SCRIPT = fileURLToPath(new URL('../../../../examples/device-login.mjs', import.meta.url))

async function run(h: OidcApp, action: 'approve' | 'deny'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [SCRIPT, '--issuer', h.issuer, '--scope', 'openid documents:read'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  const answered = new Promise<void>((resolve, reject) => {
    let done = false
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      const code = /enter the code\s+([A-Z]{4}-[A-Z]{4})/.exec(stderr)?.[1]
      if (code === undefined || done) return
      done = true
      const browser = new DeviceBrowser(h)
      void (async () => {
        await browser.signIn()
        await browser.decide(await browser.enter(code), action)
      })().then(resolve, reject)
    })
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  const timer = setTimeout(() => child.kill(), 30_000)
  await answered
  const code = await exited
  clearTimeout(timer)
  return { code, stdout, stderr }
}

t.test('the example signs in and prints the tokens', async (t) => {
  const h = await startOidcApp({ listen: true, env: { DEVICE_POLL_INTERVAL: '1', LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const out = await run(h, 'approve')
  t.equal(out.code, 0, out.stderr)
  t.match(out.stderr, new RegExp(`open ${h.issuer}/device\\n`))
  t.match(out.stderr, /Signed in as /)
  const tokens = JSON.parse(out.stdout)
  t.equal(tokens.scope, 'openid documents:read')
  t.ok(tokens.access_token)
  t.ok(tokens.refresh_token)
})

t.test('a denial ends the example with access_denied', async (t) => {
  const h = await startOidcApp({ listen: true, env: { DEVICE_POLL_INTERVAL: '1', LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const out = await run(h, 'deny')
  t.equal(out.code, 1)
  t.match(out.stderr, /Sign-in failed: access_denied/)
  t.equal(out.stdout, '')
})
