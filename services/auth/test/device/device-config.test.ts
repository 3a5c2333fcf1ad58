import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { configProblems } from '../helpers.js'

t.test('DEVICE_CODE_TTL and DEVICE_POLL_INTERVAL: defaults, bounds, and every bad value named', async (t) => {
  const config = await loadConfig({})
  t.same(config.device, { codeTtl: 600, pollInterval: 5 }, 'RFC 8628 §3.2 defaults: 10 minutes, 5 seconds')
  t.same((await loadConfig({ DEVICE_CODE_TTL: '60', DEVICE_POLL_INTERVAL: '60' })).device, { codeTtl: 60, pollInterval: 60 })
  for (const [name, value] of [['DEVICE_CODE_TTL', '59'], ['DEVICE_CODE_TTL', '3601'], ['DEVICE_CODE_TTL', 'ten'], ['DEVICE_POLL_INTERVAL', '0'], ['DEVICE_POLL_INTERVAL', '61'], ['DEVICE_POLL_INTERVAL', '1.5']] as const) {
    const problems = await configProblems({ [name]: value })
    t.equal(problems.length, 1, `${name}=${value}`)
    t.match(problems[0], name)
  }
  const both = await configProblems({ DEVICE_CODE_TTL: '0', DEVICE_POLL_INTERVAL: '0' })
  t.equal(both.length, 2, 'both named at once')
})

t.test('the dev config has the public device client of the README walk-through', async (t) => {
  const config = await loadConfig({})
  const device = config.file.clients.find((c) => c.client_id === 'cli-device')
  t.match(device, { token_endpoint_auth_method: 'none', grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'] })
})
