/**
 * Issue 20, defect 4: no timeout for slow requests. fastify's requestTimeout and the socket
 * timeout were 0, so connections sending a header or a body byte by byte stayed open untouched
 * (only Node's 60 s header timeout applied). Both services now take HTTP_REQUEST_TIMEOUT,
 * HTTP_HEADERS_TIMEOUT and HTTP_KEEP_ALIVE_TIMEOUT (service-kit/http-server.ts); here with short
 * values, against the built services as real processes, over raw sockets.
 */
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { freePort, startService, type ServiceProcess, AUTH_SCRIPT, RESOURCE_SCRIPT } from '@gatehouse/test-harness'

const TIMEOUTS = { HTTP_REQUEST_TIMEOUT: '2', HTTP_HEADERS_TIMEOUT: '1', HTTP_KEEP_ALIVE_TIMEOUT: '1' }
/** Longest a test waits for a cut: the limit plus the sweep interval and a generous margin. */
const GRACE_MS = 2500

interface Outcome {
  /** ms from connecting until the server closed the connection. */
  closedAfterMs: number
  /** What the server wrote (a 408, or nothing). */
  received: string
}

/** Opens a raw connection, writes `head` at once, then `drip` one byte every `everyMs` until the server closes it (or `boundMs`). */
async function slowClient(port: number, head: string, drip: string, everyMs: number, boundMs: number): Promise<Outcome> {
  const started = Date.now()
  const socket: Socket = connect({ host: '127.0.0.1', port })
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (c: string) => (received += c))
  socket.on('error', () => undefined) // a reset is one way of being cut
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.write(head)
  let i = 0
  const timer = setInterval(() => {
    if (!socket.destroyed && socket.writable) socket.write(drip[i++ % drip.length]!)
  }, everyMs)
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)))
  const bound = new Promise<number>((resolve) => setTimeout(() => resolve(Number.POSITIVE_INFINITY), boundMs).unref())
  const closedAfterMs = await Promise.race([closed, bound])
  clearInterval(timer)
  socket.destroy()
  return { closedAfterMs, received }
}

async function start(script: string, t: Test, env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort()
  const svc = await startService({ script, port, env: { ...TIMEOUTS, LOG_LEVEL: 'warn', ...env } })
  t.teardown(() => svc.stop())
  return svc
}

for (const [name, script, env] of [
  ['resource', RESOURCE_SCRIPT, { ISSUER: 'http://127.0.0.1:9' }],
  ['auth', AUTH_SCRIPT, {}],
] as const) {
  t.test(`${name}: a body sent byte by byte is cut at HTTP_REQUEST_TIMEOUT`, async (t) => {
    const svc = await start(script, t, env)
    const path = name === 'resource' ? '/documents' : '/token'
    const type = name === 'resource' ? 'application/json' : 'application/x-www-form-urlencoded'
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: 1000\r\n\r\n`
    // Twenty at once, as in the incident: every one is cut.
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => slowClient(svc.port, head, 'aaaa', 100, 2000 + GRACE_MS)))
    for (const o of outcomes) {
      t.ok(o.closedAfterMs >= 1500 && o.closedAfterMs <= 2000 + GRACE_MS, `closed after ${o.closedAfterMs} ms (limit 2 s)`)
      // /token reads the body (408 when it does not come); /documents refuses a request without a
      // token before reading its body (401), and the connection is cut all the same.
      t.ok(o.received === '' || /^HTTP\/1\.1 (408|401) /.test(o.received), `answered and closed: ${JSON.stringify(o.received.slice(0, 40))}`)
      if (name === 'auth') t.match(o.received, /^(HTTP\/1\.1 408 |$)/)
    }
    const res = await fetch(`${svc.url}/healthz`)
    t.equal(res.status, 200, 'the service still answers others')
  })
}

t.test('headers sent byte by byte are cut at HTTP_HEADERS_TIMEOUT', async (t) => {
  const svc = await start(RESOURCE_SCRIPT, t, { ISSUER: 'http://127.0.0.1:9' })
  const outcomes = await Promise.all(
    Array.from({ length: 50 }, () => slowClient(svc.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-Slow: aaaa\r\n', 100, 1000 + GRACE_MS)),
  )
  for (const o of outcomes) {
    t.ok(o.closedAfterMs >= 700 && o.closedAfterMs <= 1000 + GRACE_MS, `closed after ${o.closedAfterMs} ms (limit 1 s)`)
    t.ok(o.received === '' || /^HTTP\/1\.1 408 /.test(o.received), `408 or closed: ${JSON.stringify(o.received.slice(0, 40))}`)
  }
})

t.test('an idle keep-alive connection is closed at HTTP_KEEP_ALIVE_TIMEOUT', async (t) => {
  const svc = await start(RESOURCE_SCRIPT, t, { ISSUER: 'http://127.0.0.1:9' })
  const o = await slowClient(svc.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', '', 60_000, 1000 + GRACE_MS)
  t.match(o.received, /^HTTP\/1\.1 200 /, 'the request was answered')
  t.match(o.received, /keep-alive/i, 'and the connection kept open for another')
  t.ok(o.closedAfterMs >= 700 && o.closedAfterMs <= 1000 + GRACE_MS, `then closed after ${o.closedAfterMs} ms idle (limit 1 s)`)
})
