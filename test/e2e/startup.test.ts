import t from 'tap'
import { fileURLToPath } from 'node:url'
import { runProcess } from '@gatehouse/test-harness'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('invalid configuration stops each service at start, naming the variable', async (t) => {
  const auth = await runProcess([`${root}/services/auth/dist/server.js`], { PORT: 'x', ACCESS_TOKEN_TTL: 'soon' })
  t.equal(auth.code, 1)
  t.match(auth.stderr, /PORT must be/)
  t.match(auth.stderr, /ACCESS_TOKEN_TTL must be/)

  const prod = await runProcess([`${root}/services/auth/dist/server.js`], { NODE_ENV: 'production' })
  t.equal(prod.code, 1)
  for (const name of ['AUTH_CONFIG_FILE', 'REDIS_URL', 'SIGNING_KEYS_FILE', 'COOKIE_SECRET']) t.match(prod.stderr, name)

  const keys = await runProcess([`${root}/services/auth/dist/server.js`], { SIGNING_KEYS_FILE: '/nonexistent/keys.json', PORT: '0' })
  t.equal(keys.code, 1)
  t.match(keys.stderr, /SIGNING_KEYS_FILE: cannot read/)

  const resource = await runProcess([`${root}/services/resource/dist/server.js`], { CLOCK_TOLERANCE: 'lots', ISSUER: 'ftp://x' })
  t.equal(resource.code, 1)
  t.match(resource.stderr, /CLOCK_TOLERANCE/)
  t.match(resource.stderr, /ISSUER/)
  t.notMatch(auth.stderr + resource.stderr, /at .*\.(js|ts):\d+/, 'no stack traces')
})
