/**
 * OpenTelemetry tracing across the services (issue 19), with real processes: a private
 * redis-server, the built auth service and two built resource services, A (`api://resource`,
 * calling B at /reports/me with an exchanged token) and B (`AUDIENCE=api://reports`), each
 * started by its `dist/server.js` with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP
 * receiver in this test (JSON, as @opentelemetry/exporter-trace-otlp-http sends it). The
 * instrumentations patch modules as they are imported, which an ESM process can only do for
 * modules imported after the SDK started, hence processes rather than apps built in this one.
 *
 * A reaches auth's keys through a small proxy here that first serves them under other key ids:
 * A is ready, but the first token it sees has a kid it does not hold, so it fetches the JWKS
 * while verifying, inside the request's trace. The test plays the calling client: its own
 * `traceparent` on the token request and the API call, so that one trace holds the password
 * grant, the JWKS fetch, the token exchange and B's verification, each linked to its parent.
 * A second test starts a service without the variables and finds nothing of the SDK loaded.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { CLI_BASIC, REPO_ROOT, RESOURCE_SCRIPT, eventually, freePort, runProcess, startPostgres, startService, startStack } from '@gatehouse/test-harness'

/** One exported span, as far as the test needs it (OTLP/JSON, ids in hex). */
interface ExportedSpan {
  service: string
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  kind: number
  attributes: Record<string, unknown>
  /** The span's attributes and events as exported, for the secret scan. */
  raw: string
}

const SPAN_KIND_SERVER = 2
const SPAN_KIND_CLIENT = 3

interface OtlpValue {
  stringValue?: string
  intValue?: number | string
  boolValue?: boolean
  doubleValue?: number
}
interface OtlpAttribute {
  key: string
  value: OtlpValue
}
interface OtlpExport {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] }
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpAttribute[]; events?: unknown[] }[] }[]
  }[]
}

function attributeMap(list: OtlpAttribute[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const a of list ?? []) out[a.key] = a.value.stringValue ?? a.value.intValue ?? a.value.boolValue ?? a.value.doubleValue
  return out
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** An OTLP/HTTP receiver (JSON) collecting every exported span. */
async function startReceiver(): Promise<{ url: string; spans: ExportedSpan[]; close(): Promise<void> }> {
  const spans: ExportedSpan[] = []
  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        const data = JSON.parse(body) as OtlpExport
        for (const rs of data.resourceSpans ?? []) {
          const service = String(attributeMap(rs.resource?.attributes)['service.name'])
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
                name: s.name,
                kind: s.kind,
                attributes: attributeMap(s.attributes),
                raw: JSON.stringify({ attributes: s.attributes, events: s.events }),
              })
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  const url = await listen(server)
  return { url, spans, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

/**
 * A proxy for auth's /jwks.json: until `forward()`, the real keys under other kids (so that A is
 * ready yet holds no key of the tokens it will see); after, the real answer, passing on the
 * caller's `traceparent` so that the trace goes through unchanged.
 */
async function startJwksProxy(issuer: string): Promise<{ url: string; forward(): void; close(): Promise<void> }> {
  let forwarding = false
  const server = createServer((req, res) => {
    void (async () => {
      const traceparent = req.headers.traceparent
      const upstream = await fetch(`${issuer}/jwks.json`, { headers: typeof traceparent === 'string' ? { traceparent } : {} })
      const jwks = (await upstream.json()) as { keys: { kid: string }[] }
      if (!forwarding) for (const key of jwks.keys) key.kid = `decoy-${key.kid}`
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' }).end(JSON.stringify(jwks))
    })().catch(() => res.writeHead(502).end())
  })
  const url = await listen(server)
  return {
    url,
    forward: () => {
      forwarding = true
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** The chain of ancestors of a span within its trace, nearest first (stops at a parent not exported). */
function ancestors(span: ExportedSpan, byId: Map<string, ExportedSpan>): ExportedSpan[] {
  const out: ExportedSpan[] = []
  for (let p = byId.get(span.parentSpanId); p !== undefined && out.length < 100; p = byId.get(p.parentSpanId)) out.push(p)
  return out
}

t.test('one trace: password grant, JWKS fetch, token exchange and both verifications, parents linked, no secret', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' }
  const { issuer, redis } = await startStack(t, { resource: false, auth: otel })
  const proxy = await startJwksProxy(issuer)
  t.teardown(() => proxy.close())
  const start = async (env: Record<string, string>) => {
    const service = await startService({ script: RESOURCE_SCRIPT, port: await freePort(), env: { LOG_LEVEL: 'info', ISSUER: issuer, REDIS_URL: redis.url, ...otel, ...env }, readyPath: '/readyz' })
    t.teardown(() => service.stop())
    return service
  }
  const b = await start({ AUDIENCE: 'api://reports', OTEL_SERVICE_NAME: 'gatehouse-reports' })
  const a = await start({
    AUDIENCE: 'api://resource',
    JWKS_URI: `${proxy.url}/jwks.json`,
    REPORTS_URL: b.url,
    EXCHANGE_CLIENT_ID: 'resource-service',
    EXCHANGE_CLIENT_SECRET: 'resource-service-secret',
  })
  proxy.forward()

  // The test is the caller: its span is the trace's root.
  const traceId = randomBytes(16).toString('hex')
  const rootSpanId = randomBytes(8).toString('hex')
  const traceparent = `00-${traceId}-${rootSpanId}-01`
  const login = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { traceparent, authorization: CLI_BASIC, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid documents:read reports:read' }).toString(),
  })
  t.equal(login.status, 200, 'alice signs in')
  const tokens = (await login.json()) as { access_token: string; refresh_token: string }
  const seen = await fetch(`${a.url}/reports/me`, { headers: { traceparent, authorization: `Bearer ${tokens.access_token}` } })
  t.equal(seen.status, 200, 'A called B for alice')
  // A refresh: the rotation span, and the rotate script's EVALSHA under it (ioredis instrumentation).
  const refreshed = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { traceparent, authorization: CLI_BASIC, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).toString(),
  })
  t.equal(refreshed.status, 200, 'refreshed')
  const rotated = (await refreshed.json()) as { access_token: string; refresh_token: string }
  // A token in a query (refused there, RFC 6750 §2.3 is not offered): the URL attributes must not carry it.
  const inQuery = await fetch(`${a.url}/me?access_token=${tokens.access_token}`, { headers: { traceparent } })
  t.equal(inQuery.status, 400)

  const wanted = (s: ExportedSpan[]): boolean =>
    ['gatehouse.grant password', 'gatehouse.grant urn:ietf:params:oauth:grant-type:token-exchange', 'gatehouse.jwks.fetch', 'gatehouse.token_request'].every((n) => s.some((x) => x.name === n)) &&
    s.filter((x) => x.name === 'gatehouse.verify').length >= 2 &&
    s.some((x) => x.raw.includes('/me?access_token=')) &&
    s.some((x) => x.name === 'gatehouse.family.rotate') &&
    s.some((x) => x.service === 'gatehouse-auth' && x.kind === SPAN_KIND_SERVER && String(x.attributes['http.target'] ?? x.attributes['url.path']).startsWith('/jwks.json'))
  const trace = await eventually('the trace to be exported', async () => receiver.spans.filter((s) => s.traceId === traceId), wanted, 15_000, 100)
  const byId = new Map(trace.map((s) => [s.spanId, s]))
  const one = (pred: (s: ExportedSpan) => boolean, what: string): ExportedSpan => {
    const found = trace.filter(pred)
    t.equal(found.length, 1, `one ${what}`)
    return found[0]!
  }
  const rootsAtCaller = (s: ExportedSpan): boolean => ancestors(s, byId).at(-1)?.parentSpanId === rootSpanId || s.parentSpanId === rootSpanId

  t.same(new Set(trace.map((s) => s.service)), new Set(['gatehouse-auth', 'gatehouse-resource', 'gatehouse-reports']), 'the three services are in the trace')

  // The password grant: auth's server span continues the caller's trace; the grant span is under it.
  const password = one((s) => s.name === 'gatehouse.grant password', 'password grant span')
  t.match(password.attributes, { 'oauth.grant_type': 'password', 'oauth.client_id': 'cli', 'gatehouse.outcome': 'issued' })
  const passwordServer = ancestors(password, byId).find((s) => s.kind === SPAN_KIND_SERVER)
  t.equal(passwordServer?.parentSpanId, rootSpanId, "auth's server span is the caller's child")

  // A verifies alice's token; its kid is new to A, so A fetches the JWKS from auth inside the verification.
  const verifyA = one((s) => s.service === 'gatehouse-resource' && s.name === 'gatehouse.verify' && s.attributes['gatehouse.verify.outcome'] === 'valid', "A's verification")
  t.ok(rootsAtCaller(verifyA), "A's verification is in the caller's trace, every parent exported")
  t.ok(typeof verifyA.attributes['jwt.kid'] === 'string' && typeof verifyA.attributes['jwt.alg'] === 'string', 'kid and alg recorded')
  const jwksFetch = one((s) => s.name === 'gatehouse.jwks.fetch', 'JWKS fetch span')
  t.equal(jwksFetch.parentSpanId, verifyA.spanId, 'the fetch is the verification\'s child')
  t.equal(jwksFetch.attributes['gatehouse.jwks.outcome'], 'updated')
  const jwksServer = one((s) => s.service === 'gatehouse-auth' && s.kind === SPAN_KIND_SERVER && String(s.attributes['http.target'] ?? s.attributes['url.path']).startsWith('/jwks.json'), "auth's /jwks.json server span")
  const jwksClient = byId.get(jwksServer.parentSpanId)
  t.equal(jwksClient?.service, 'gatehouse-resource', "auth's /jwks.json span has A's request as parent")
  t.equal(jwksClient?.kind, SPAN_KIND_CLIENT, '(a client span: undici, with traceparent)')
  t.ok(jwksClient !== undefined && ancestors(jwksClient, byId).includes(jwksFetch), 'under the fetch span')

  // A exchanges the token at auth (token client), then calls B, which verifies the exchanged token.
  const tokenRequest = one((s) => s.name === 'gatehouse.token_request', "A's token request")
  t.match(tokenRequest.attributes, { 'oauth.grant_type': 'urn:ietf:params:oauth:grant-type:token-exchange', 'oauth.client_id': 'resource-service', 'gatehouse.outcome': 'ok' })
  const exchange = one((s) => s.name === 'gatehouse.grant urn:ietf:params:oauth:grant-type:token-exchange', 'exchange grant span')
  t.equal(exchange.attributes['oauth.client_id'], 'resource-service')
  t.ok(ancestors(exchange, byId).includes(tokenRequest), "auth's exchange descends from A's token request")
  t.ok(rootsAtCaller(exchange), 'and from the caller')
  const verifyB = one((s) => s.service === 'gatehouse-reports' && s.name === 'gatehouse.verify', "B's verification")
  t.equal(verifyB.attributes['gatehouse.verify.outcome'], 'valid')
  const bServer = ancestors(verifyB, byId).find((s) => s.kind === SPAN_KIND_SERVER && s.service === 'gatehouse-reports')
  t.equal(byId.get(bServer?.parentSpanId ?? '')?.service, 'gatehouse-resource', "B's server span has A's client span as parent")
  t.ok(rootsAtCaller(verifyB), "B's verification is in the caller's trace, every parent exported")

  // The refresh: grant span, rotation span under it, the script's EVALSHA under that, named by its command only.
  const refreshGrant = one((s) => s.name === 'gatehouse.grant refresh_token', 'refresh grant span')
  t.match(refreshGrant.attributes, { 'oauth.grant_type': 'refresh_token', 'oauth.client_id': 'cli', 'gatehouse.outcome': 'issued' })
  const rotation = one((s) => s.name === 'gatehouse.family.rotate', 'rotation span')
  t.equal(rotation.parentSpanId, refreshGrant.spanId, 'the rotation is the grant\'s child')
  t.equal(rotation.attributes['gatehouse.rotation.outcome'], 'rotated')
  const evalsha = trace.filter((s) => s.parentSpanId === rotation.spanId && /^evalsha$/i.test(s.name))
  t.equal(evalsha.length, 1, 'one EVALSHA span under the rotation')
  t.equal(evalsha[0]?.attributes['db.query.text'] ?? evalsha[0]?.attributes['db.statement'], 'evalsha', 'the statement is the command name, no keys or arguments')

  // The refused call with a token in its query: in the trace, its URL redacted.
  t.ok(trace.some((s) => s.raw.includes('access_token=[redacted]')), 'the query call is traced, its URL with the token redacted')

  // No secret in any attribute or event of any span exported (every trace, not only this one).
  const secrets = { access_token: tokens.access_token, refresh_token: tokens.refresh_token, new_access_token: rotated.access_token, new_refresh_token: rotated.refresh_token, password: 'alice-password', client_secret: 'resource-service-secret', cli_secret: 'cli-secret', jwt: 'eyJ' }
  for (const [name, secret] of Object.entries(secrets)) {
    t.notOk(receiver.spans.some((s) => s.raw.includes(secret)), `no ${name} in any span`)
  }

  // Log lines of the traced requests carry the trace's id.
  t.ok(
    a.output.some((line) => line.includes('"request completed"') && line.includes(`"trace_id":"${traceId}"`) && /"span_id":"[0-9a-f]{16}"/.test(line)),
    "A's request lines carry trace_id and span_id",
  )
})

t.test('PostgreSQL queries of a traced grant: pg spans under it, SQL with placeholders only', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const { issuer } = await startStack(t, {
    resource: false,
    auth: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100', DATABASE_URL: await pg.createDatabase(), DATABASE_MIGRATE: '1' },
  })
  const traceId = randomBytes(16).toString('hex')
  const login = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`, authorization: CLI_BASIC, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' }).toString(),
  })
  t.equal(login.status, 200, 'alice signs in, her user read from PostgreSQL')
  const tokens = (await login.json()) as { access_token: string; refresh_token: string }
  // The pg instrumentation writes the stable database conventions (`db.system.name`, `db.query.text`).
  const isQuery = (s: ExportedSpan): boolean => (s.attributes['db.system.name'] ?? s.attributes['db.system']) === 'postgresql' && s.name.startsWith('pg.query')
  const trace = await eventually('the grant and its queries', async () => receiver.spans.filter((s) => s.traceId === traceId), (s) => s.some((x) => x.name === 'gatehouse.grant password') && s.some(isQuery), 15_000, 100)
  const byId = new Map(trace.map((s) => [s.spanId, s]))
  const grant = trace.find((s) => s.name === 'gatehouse.grant password')!
  const queries = trace.filter(isQuery)
  t.ok(queries.length > 0, `${queries.length} PostgreSQL spans in the grant's trace`)
  t.ok(queries.every((q) => ancestors(q, byId).includes(grant)), 'each under the grant span')
  for (const secret of ['alice-password', tokens.access_token, tokens.refresh_token, 'cli-secret', 'eyJ', '$argon2', '$2b$']) {
    t.notOk(receiver.spans.some((s) => s.raw.includes(secret)), `no ${secret.slice(0, 12)}… in any span`)
  }
})

t.test('tracing off: nothing of the SDK is loaded, no tracer provider registered', async (t) => {
  const probe = `${REPO_ROOT}test/e2e/fixtures/tracing-probe.mjs`
  const base = { ISSUER: 'http://127.0.0.1:1', HOST: '127.0.0.1', LOG_LEVEL: 'silent' }
  const off = await runProcess([probe, RESOURCE_SCRIPT], { ...base, PORT: String(await freePort()) })
  t.match(off.stdout, /PROBE \{"sdkModules":0,"tracerProvider":false,"contextManager":false\}/, `off: ${off.stdout.trim()}`)
  const none = await runProcess([probe, RESOURCE_SCRIPT], { ...base, PORT: String(await freePort()), OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_EXPORTER: 'none' })
  t.match(none.stdout, /PROBE \{"sdkModules":0,"tracerProvider":false/, `OTEL_TRACES_EXPORTER=none wins: ${none.stdout.trim()}`)
  // The probe is not blind: on, it sees the SDK.
  const on = await runProcess([probe, RESOURCE_SCRIPT], { ...base, PORT: String(await freePort()), OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' })
  t.match(on.stdout, /PROBE \{"sdkModules":[1-9]\d*,"tracerProvider":true,"contextManager":true\}/, `on: ${on.stdout.trim()}`)
})
