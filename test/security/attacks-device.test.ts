/**
 * Attack regressions against the device authorization grant (issue 15, RFC 8628 §5): guessing
 * user codes on the verification page, polling faster than the interval, reusing a device code
 * (by its client or another). The detailed rules are tested beside the code
 * (services/auth/test/device/; SECURITY.md maps each attack to its tests). The app's clock follows
 * real time and is moved ahead by the test, so the margins below are whole seconds.
 */
import t from 'tap'
import { startOidcApp } from './auth-fixture.js'
import { DeviceBrowser, poll, startDevice } from '../../services/auth/test/device/device-harness.js'

const ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ'

t.test('user-code guessing: a scripted guesser is locked out long before it could hit a live code', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0', LOGIN_MAX_ATTEMPTS: '5', LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '8' } })
  t.teardown(h.close)
  const live = (await startDevice(h)).json()
  // The attacker has an account and signs in again and again to get fresh sessions, from one address.
  let statuses: number[] = []
  for (let s = 0; s < 4; s++) {
    const attacker = new DeviceBrowser(h, '203.0.113.9')
    await attacker.signIn('/device', 'bob', 'bob-password')
    for (let i = 0; i < 5; i++) {
      const guess = Array.from({ length: 8 }, (_, j) => ALPHABET[(s * 5 + i + j) % ALPHABET.length]).join('')
      if (guess === live.user_code.replace('-', '')) continue
      statuses.push((await attacker.enter(guess)).status)
    }
  }
  t.equal(statuses.filter((s) => s === 400).length, 8, 'eight wrong answers in the window, then nothing but lockouts')
  t.ok(statuses.slice(8).every((s) => s === 429))
  statuses = []
  // Even the right code is not looked up for that address now.
  const attacker = new DeviceBrowser(h, '203.0.113.9')
  await attacker.signIn('/device', 'bob', 'bob-password')
  t.equal((await attacker.enter(live.user_code)).status, 429)
  h.clock.advance(5_000)
  t.equal((await poll(h, live.device_code)).json().error, 'authorization_pending', 'nothing was approved')
})

t.test('polling faster than the interval: slow_down, and the wait grows by 5 s each time', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const started = (await startDevice(h)).json()
  t.equal((await poll(h, started.device_code)).json().error, 'authorization_pending')
  const answers: string[] = []
  for (let i = 0; i < 5; i++) {
    h.clock.advance(1_000)
    const res = await poll(h, started.device_code)
    t.equal(res.statusCode, 400)
    answers.push(res.json().error)
  }
  t.same(answers, ['slow_down', 'slow_down', 'slow_down', 'slow_down', 'slow_down'])
  h.clock.advance(29_000)
  t.equal((await poll(h, started.device_code)).json().error, 'slow_down', 'the interval is 30 s now (5 + 5 × 5): 29 s is too soon')
  h.clock.advance(34_000)
  t.equal((await poll(h, started.device_code)).json().error, 'slow_down', 'and 35 s after the sixth: 34 s is too soon')
  h.clock.advance(40_000)
  t.equal((await poll(h, started.device_code)).json().error, 'authorization_pending', 'waiting the whole raised interval (40 s) is pending again')
})

t.test('reusing a device code: tokens once; a second poll, or another client, gets invalid_grant', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' }, clients: [{ client_id: 'evil-device', token_endpoint_auth_method: 'none', grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], scope: 'openid profile documents:read' }] })
  t.teardown(h.close)
  const started = (await startDevice(h)).json()
  const user = new DeviceBrowser(h)
  await user.signIn()
  await user.decide(await user.enter(started.user_code), 'approve')
  t.equal((await poll(h, started.device_code, 'evil-device')).json().error, 'invalid_grant', 'a stolen device code is useless to another client')
  const first = await poll(h, started.device_code)
  t.equal(first.statusCode, 200)
  h.clock.advance(10_000)
  const replay = await poll(h, started.device_code)
  t.equal(replay.statusCode, 400)
  t.equal(replay.json().error, 'invalid_grant', 'single use')
  t.equal(h.logs.events('token.issued').filter((e) => e.client_id === 'cli-device').length, 1, 'one set of tokens')
})
