import t from 'tap'
import Fastify from 'fastify'
import pino from 'pino'
import { Writable } from 'node:stream'
import { RequestLogController, loggerOptions, redactSecrets } from '../src/index.js'

/** A pino logger built from the services' options, writing into an array of parsed lines. */
function capture(level = 'info') {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      done()
    },
  })
  return { lines, stream, options: loggerOptions(level) }
}

t.test('secret fields are censored at the top of a line and one level down', async (t) => {
  const { lines, stream, options } = capture()
  const log = pino(options, stream)
  const body = { username: 'alice', password: 'pw-1', nested: { password: 'pw-2' } }
  const err = Object.assign(new Error('boom'), { code: 'authcode-1', client_secret: 'cs-1' })
  log.info({ password: 'pw-0', token: 'tok-0', body, client: { client_secret: 'cs-0', id: 'cli' }, err, code: 'E_TOP' }, 'x')
  log.info({ headers: { authorization: 'Bearer abc', cookie: 'c=1', dpop: 'eyJ.proof.sig', accept: 'json' } }, 'y')
  log.info({ req: { method: 'GET', headers: { authorization: 'Basic zzz', 'x-csrf-token': 'csrf-1' } }, res: { headers: { 'set-cookie': 'sid=s3ss' } } }, 'z')
  await new Promise((resolve) => setImmediate(resolve))
  const [x, y, z] = lines as [Record<string, any>, Record<string, any>, Record<string, any>]
  t.equal(x.password, '[redacted]')
  t.equal(x.token, '[redacted]')
  t.equal(x.body.password, '[redacted]', 'one level down')
  t.equal(x.body.username, 'alice', 'other fields kept')
  t.same(x.body.nested, { password: 'pw-2' }, 'two levels down is not scanned (never log whole bodies)')
  t.equal(x.client.client_secret, '[redacted]')
  t.equal(x.client.id, 'cli')
  t.equal(x.code, 'E_TOP', 'a top-level code is an error code')
  t.equal(x.err.code, '[redacted]', 'a nested code may be an authorization code')
  t.equal(x.err.client_secret, '[redacted]')
  t.equal(x.err.message, 'boom', 'an error stays an error (message and stack serialized)')
  t.match(x.err.stack, /Error: boom/)
  t.same(y.headers, { authorization: '[redacted]', cookie: '[redacted]', dpop: '[redacted]', accept: 'json' })
  t.same(z.req, { method: 'GET' }, 'the request serializer logs no headers')
  t.same(z.res, {}, 'nor the reply serializer')
  t.equal(body.password, 'pw-1', "the caller's objects are not changed")
  t.equal(err.code, 'authcode-1')
  t.notMatch(JSON.stringify(lines), /pw-0|pw-1|tok-0|cs-0|cs-1|authcode-1|abc|zzz|csrf-1|c=1|s3ss/)
})

t.test('redactSecrets returns the very object when nothing needs censoring', async (t) => {
  const fields = { event: 'token.issued', client_id: 'cli', req: { method: 'POST' } }
  t.equal(redactSecrets(fields), fields)
})

t.test('one line per request, carrying the request; the arrival line at debug only', async (t) => {
  for (const level of ['info', 'debug']) {
    const { lines, stream, options } = capture(level)
    const app = Fastify({ logger: { ...options, stream }, logController: new RequestLogController() })
    app.get('/x', async () => ({ ok: true }))
    app.get('/boom', async () => {
      throw new Error('kaput')
    })
    const ok = await app.inject({ method: 'GET', url: '/x?access_token=secret-1&page=2', headers: { 'x-request-id': 'r1' } })
    t.equal(ok.statusCode, 200)
    const failed = await app.inject({ method: 'GET', url: '/boom' })
    t.equal(failed.statusCode, 500)
    await app.close()
    const completed = lines.filter((l) => l.msg === 'request completed') as Record<string, any>[]
    const incoming = lines.filter((l) => l.msg === 'incoming request')
    t.equal(completed.length, 2, `${level}: one completion line per request`)
    t.same(completed[0]!.req, { method: 'GET', url: '/x?access_token=[redacted]&page=2', host: 'localhost:80', remoteAddress: '127.0.0.1' })
    t.same(completed[0]!.res, { statusCode: 200 })
    t.type(completed[0]!.responseTime, 'number')
    t.equal(completed[1]!.res.statusCode, 500)
    t.equal(incoming.length, level === 'debug' ? 2 : 0, `${level}: arrival lines`)
    t.ok(lines.some((l) => l.level === 50 && (l.err as { message?: string } | undefined)?.message === 'kaput'), 'the error is logged')
    t.notMatch(JSON.stringify(lines), /secret-1/)
  }
})

t.test('redactUrl: pending-authorization handles (PAR request_uri, device user_code) are redacted too', async (t) => {
  const { redactUrl } = await import('../src/logger.js')
  t.equal(
    redactUrl('/authorize?client_id=web&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc'),
    '/authorize?client_id=web&request_uri=[redacted]',
  )
  t.equal(redactUrl('/device?user_code=BCDF-GHJK'), '/device?user_code=[redacted]')
  t.equal(redactUrl('/x?DEVICE_CODE=z&a=1'), '/x?DEVICE_CODE=[redacted]&a=1')
})
