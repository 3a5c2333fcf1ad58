import t from 'tap'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { REDACT_QUERY_PARAMS, SECRET_FIELDS, loggerOptions, redactUrl } from '../src/index.js'
import { RedactingSpanProcessor, redactAttributes, tracingEnabled, tracingStarted } from '../src/tracing.js'

/** The log lines' rules, as startTracing passes them. */
const REDACTION = { redactUrl, secretFields: SECRET_FIELDS }

t.test('tracing is on only when an endpoint or an exporter is named', async (t) => {
  t.equal(tracingEnabled({}), false, 'nothing set')
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), false, 'empty endpoint')
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '   ' }), false, 'blank endpoint')
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true)
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), true)
  t.equal(tracingEnabled({ OTEL_TRACES_EXPORTER: 'otlp' }), true)
  t.equal(tracingEnabled({ OTEL_TRACES_EXPORTER: 'console' }), true)
  t.equal(tracingEnabled({ OTEL_TRACES_EXPORTER: 'NONE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), false, 'none wins over an endpoint')
  t.equal(tracingEnabled({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), false, 'OTEL_SDK_DISABLED wins')
  t.equal(tracingEnabled({ OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true)
})

t.test('tracing not started: the log options carry no mixin (log lines cost what they did)', async (t) => {
  t.equal(tracingStarted(), false)
  t.equal(loggerOptions('info').mixin, undefined)
})

t.test('span attributes: secret query values and secret-named attributes are censored', async (t) => {
  const attributes = {
    'http.target': '/authorize?client_id=web&code=c0de-1&state=s',
    'http.url': 'http://auth/callback?Code=c0de-2&x=1',
    'url.full': 'http://auth/me?access_token=eyJabc&ok=1',
    'url.query': 'refresh_token=rt-1&scope=openid',
    'url.path': '/token',
    'http.request.header.authorization': 'Basic Y2xpOmNsaS1zZWNyZXQ=',
    'oauth.client_id': 'web',
    'http.status_code': 200,
  }
  t.ok(REDACT_QUERY_PARAMS.has('code'))
  redactAttributes(attributes, REDACTION)
  t.same(attributes, {
    'http.target': '/authorize?client_id=web&code=[redacted]&state=s',
    'http.url': 'http://auth/callback?Code=[redacted]&x=1',
    'url.full': 'http://auth/me?access_token=[redacted]&ok=1',
    'url.query': 'refresh_token=[redacted]&scope=openid',
    'url.path': '/token',
    'http.request.header.authorization': '[redacted]',
    'oauth.client_id': 'web',
    'http.status_code': 200,
  })
})

t.test('the redacting processor censors spans and events before the exporter sees them', async (t) => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new RedactingSpanProcessor(new SimpleSpanProcessor(exporter), REDACTION)] })
  t.teardown(() => provider.shutdown())
  const span = provider.getTracer('test').startSpan('GET', { attributes: { 'url.full': 'http://x/cb?code=secret-code-1' } })
  span.addEvent('exception', { 'exception.message': 'at http://x/cb?code=secret-code-2', password: 'pw' })
  span.end()
  const [exported] = exporter.getFinishedSpans()
  const text = JSON.stringify({ a: exported?.attributes, e: exported?.events })
  t.notMatch(text, /secret-code|"pw"/)
  t.equal(exported?.attributes['url.full'], 'http://x/cb?code=[redacted]')
})
