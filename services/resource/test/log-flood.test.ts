import t from 'tap'
import { buildApp, loadConfig } from '../src/index.js'
import { AUDIENCE, ManualClock, startFakeIssuer } from '@gatehouse/test-harness'

/**
 * Issue 20, defect 6: during an issuer outage every request the service cannot check used to log
 * one warning (about 19,000 lines in 30 s). Now the first is logged at once and the rest are
 * counted, one line per interval.
 */

const auth = await startFakeIssuer()
t.teardown(() => auth.close())

t.test('N requests that cannot be checked during an outage write O(1) lines', async (t) => {
  const clock = new ManualClock(Date.now())
  const logs: Record<string, unknown>[] = []
  const app = buildApp(loadConfig({ ISSUER: auth.issuer, AUDIENCE, LOG_LEVEL: 'info' }), {
    // The issuer is down: every discovery or JWKS request fails.
    fetch: async () => {
      throw new TypeError('fetch failed')
    },
    clock: clock.now,
    logStream: { write: (line) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  })
  t.teardown(() => app.close())
  await app.ready()
  const token = auth.userToken()
  const N = 500
  for (let i = 0; i < N; i++) {
    const res = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 503)
  }
  const unverifiable = (): Record<string, unknown>[] => logs.filter((l) => String(l.msg).startsWith('access token cannot be checked'))
  t.equal(unverifiable().length, 1, `${N} failing requests, one warning so far`)
  t.equal(unverifiable()[0]!.reason, 'jwks_unavailable', 'the first one in full, with its reason')
  t.ok(unverifiable()[0]!.reqId !== undefined, 'through the request logger')
  t.ok(logs.filter((l) => l.level === 40).length <= 6, `all warnings, fetch failures included: ${logs.filter((l) => l.level === 40).length}`)

  clock.advance(10_000)
  await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })
  const summary = unverifiable().find((l) => l.count !== undefined)
  t.match(summary, { event: 'verifier.no_key.jwks_unavailable', count: N - 1, interval_ms: 10_000 }, 'then one line with the count')
  t.equal(unverifiable().length, 2)
})
