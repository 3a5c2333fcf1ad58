import { ConfigError } from '@gatehouse/service-kit'
import t from 'tap'
import { loadConfig } from '../src/index.js'

t.test('defaults (DESIGN §4)', async (t) => {
  const config = loadConfig({})
  t.same(config, {
    host: '127.0.0.1',
    port: 4001,
    issuer: 'http://127.0.0.1:4000',
    audience: 'api://resource',
    jwksUri: undefined,
    redisUrl: undefined,
    clockTolerance: 30,
    publicUrl: undefined,
    dpopNonceSecret: undefined,
    logLevel: 'info',
    http: { requestTimeout: 30, headersTimeout: 10, keepAliveTimeout: 65 },
    overload: { maxEventLoopDelayMs: 0, maxHeapUsedMb: 0, maxQueueMs: 0, retryAfter: 1 },
  })
  t.ok(Object.isFrozen(config))
})

t.test('every variable', async (t) => {
  const config = loadConfig({
    HOST: '0.0.0.0',
    PORT: '8080',
    ISSUER: 'https://auth.example',
    AUDIENCE: 'api://documents',
    JWKS_URI: 'http://auth.internal:4000/jwks.json',
    REDIS_URL: 'rediss://user:pw@redis.internal:6380',
    CLOCK_TOLERANCE: '5',
    PUBLIC_URL: 'https://api.example.com/documents-api',
    DPOP_NONCE_SECRET: 'sixteen bytes or more',
    LOG_LEVEL: 'warn',
    HTTP_REQUEST_TIMEOUT: '20',
    HTTP_HEADERS_TIMEOUT: '5',
    HTTP_KEEP_ALIVE_TIMEOUT: '120',
  })
  t.same(config, {
    host: '0.0.0.0',
    port: 8080,
    issuer: 'https://auth.example',
    audience: 'api://documents',
    jwksUri: 'http://auth.internal:4000/jwks.json',
    redisUrl: 'rediss://user:pw@redis.internal:6380',
    clockTolerance: 5,
    publicUrl: 'https://api.example.com/documents-api',
    dpopNonceSecret: 'sixteen bytes or more',
    logLevel: 'warn',
    http: { requestTimeout: 20, headersTimeout: 5, keepAliveTimeout: 120 },
    overload: { maxEventLoopDelayMs: 0, maxHeapUsedMb: 0, maxQueueMs: 0, retryAfter: 1 },
  })
})

t.test('every invalid value is reported at once, naming the variable', async (t) => {
  const env = {
    PORT: 'eighty',
    ISSUER: 'not a url',
    AUDIENCE: 'two words',
    JWKS_URI: 'ftp://keys',
    REDIS_URL: 'http://redis:6379',
    CLOCK_TOLERANCE: '-5',
    PUBLIC_URL: 'api.example.com',
    DPOP_NONCE_SECRET: 'too short',
    LOG_LEVEL: 'loud',
    HTTP_REQUEST_TIMEOUT: '0',
    HTTP_HEADERS_TIMEOUT: '1.5',
    HTTP_KEEP_ALIVE_TIMEOUT: '3601',
  }
  const err = t.throws(() => loadConfig(env)) as unknown
  t.ok(err instanceof ConfigError)
  const problems = (err as ConfigError).problems
  t.equal(problems.length, Object.keys(env).length)
  for (const name of Object.keys(env)) t.ok(problems.some((p) => p.startsWith(name)), name)
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT must be between 0 and 65535/)
  t.throws(() => loadConfig({ CLOCK_TOLERANCE: '301' }), /CLOCK_TOLERANCE/)
  t.throws(() => loadConfig({ PUBLIC_URL: 'https://api.example.com/?x=1' }), /PUBLIC_URL must have no query/)
  t.throws(() => loadConfig({ HTTP_REQUEST_TIMEOUT: '5', HTTP_HEADERS_TIMEOUT: '10' }), /HTTP_HEADERS_TIMEOUT must not exceed HTTP_REQUEST_TIMEOUT/)
  t.equal(loadConfig({ HTTP_REQUEST_TIMEOUT: '4' }).http?.headersTimeout, 4, 'the headers default never exceeds the request timeout')
})
