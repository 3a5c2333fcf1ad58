import t from 'tap'
import { configProblems as problems } from '../helpers.js'
import { loadConfig } from '../../src/config.js'
import { keyPolicy } from '../../src/keys/key-lifecycle.js'


t.test('key lifecycle settings: defaults and the policy they imply', async (t) => {
  const c = await loadConfig({})
  t.match(c, { signingKeysStore: 'file', jwksMaxAge: 300, keysReloadInterval: 10, keyRotationInterval: 0, keyRotationMargin: 60 })
  // A new key waits 370 s (> the 300 s verifiers may cache /jwks.json); an old one stays 970 s
  // (> the 900 s its tokens live).
  t.same(keyPolicy(c), { publishDelay: 370, activationDelay: 10, retireDelay: 970, rotationInterval: 0 })
})

t.test('the key set in Redis needs Redis and an encryption secret; automatic rotation needs it', async (t) => {
  t.same(await problems({ SIGNING_KEYS_STORE: 'redis' }), [
    'SIGNING_KEYS_STORE=redis needs REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS)',
    'SIGNING_KEYS_ENCRYPTION_SECRET is required with SIGNING_KEYS_STORE=redis (the key set is encrypted at rest)',
  ])
  t.match(await problems({ REDIS_URL: 'redis://127.0.0.1:1', SIGNING_KEYS_STORE: 'redis', SIGNING_KEYS_ENCRYPTION_SECRET: 'short' }), [/at least 32 characters/])
  t.match(await problems({ SIGNING_KEYS_STORE: 'vault' }), [/SIGNING_KEYS_STORE must be one of file, redis/])
  t.match(await problems({ KEY_ROTATION_INTERVAL: '2592000' }), [/KEY_ROTATION_INTERVAL needs SIGNING_KEYS_STORE=redis .*gatehouse keys rotate/])
  const redis = { REDIS_URL: 'redis://127.0.0.1:1', SIGNING_KEYS_STORE: 'redis', SIGNING_KEYS_ENCRYPTION_SECRET: 'x'.repeat(32) }
  t.match(await problems({ ...redis, KEY_ROTATION_INTERVAL: '370' }), [/must be longer than JWKS_MAX_AGE \+ KEYS_RELOAD_INTERVAL \+ KEY_ROTATION_MARGIN \(370\)/])
  t.match(await loadConfig({ ...redis, KEY_ROTATION_INTERVAL: '2592000' }), { keyRotationInterval: 2592000, signingKeysStore: 'redis' })
  for (const name of ['JWKS_MAX_AGE', 'KEYS_RELOAD_INTERVAL', 'KEY_ROTATION_MARGIN', 'KEY_ROTATION_INTERVAL']) {
    t.match(await problems({ [name]: '-1' }), [new RegExp(`${name} must be a whole number`)])
  }
  t.match(await problems({ KEYS_RELOAD_INTERVAL: '0' }), [/KEYS_RELOAD_INTERVAL must be between 1 and 3600/])
})

t.test('in production the key set may live in Redis instead of a file', async (t) => {
  const prod = { NODE_ENV: 'production', AUTH_CONFIG_FILE: new URL('../../config/dev.json', import.meta.url).pathname, REDIS_URL: 'redis://127.0.0.1:1', COOKIE_SECRET: 'c'.repeat(32), REFRESH_TOKEN_SECRET: 'r'.repeat(32) }
  t.match(await problems(prod), [/SIGNING_KEYS_FILE is required/])
  t.same(await problems({ ...prod, SIGNING_KEYS_STORE: 'redis', SIGNING_KEYS_ENCRYPTION_SECRET: 'k'.repeat(32) }), [])
})
