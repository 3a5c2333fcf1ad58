/**
 * The device-code store down (Redis unreachable): every device endpoint answers 503
 * temporarily_unavailable (JSON at the OAuth endpoints, a page at /device), never a 500, and the
 * store error is counted.
 */
import t from 'tap'
import { StoreUnavailable } from '../../src/store/types.js'
import type { DeviceCodeStore } from '../../src/device/device-codes.js'
import { startOidcApp } from '../oidc/harness.js'
import { DeviceBrowser, poll, startDevice } from './device-harness.js'

const down = (): Promise<never> => Promise.reject(new StoreUnavailable('redis: connection refused'))
const deadStore: DeviceCodeStore = { start: down, findByUserCode: down, decide: down, poll: down }

t.test('the device-code store down: 503 everywhere, never a 500', async (t) => {
  const h = await startOidcApp({ env: { LOGIN_DELAY_MS: '0' } })
  t.teardown(h.close)
  const browser = new DeviceBrowser(h)
  await browser.signIn()
  h.deps.device.codes = deadStore

  const started = await startDevice(h)
  t.equal(started.statusCode, 503)
  t.equal(started.json().error, 'temporarily_unavailable')
  t.equal(started.headers['cache-control'], 'no-store')
  const polled = await poll(h, 'A'.repeat(43))
  t.equal(polled.statusCode, 503)
  t.equal(polled.json().error, 'temporarily_unavailable')

  const page = await browser.enter('BCDF-GHJK')
  t.equal(page.status, 503)
  t.match(page.headers.get('content-type'), /text\/html/)
  t.match(page.html, /not possible right now/)
  t.equal(h.logs.events('device.user_code_failed').length, 0, 'an outage is not a wrong code')
})
