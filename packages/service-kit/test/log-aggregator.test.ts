import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { LogAggregator, OVERFLOW_KEY } from '../src/index.js'

/** A logger that records what it is given. */
function recorder() {
  const lines: { obj: Record<string, unknown>; msg: string | undefined }[] = []
  return { lines, warn: (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg }) }
}

function setup(opts: { intervalMs?: number; maxKeys?: number } = {}) {
  const clock = new ManualClock(1_700_000_000_000)
  const app = recorder()
  const request = recorder()
  const agg = new LogAggregator({ logger: app, clock: clock.now, timer: false, intervalMs: opts.intervalMs ?? 10_000, maxKeys: opts.maxKeys })
  return { agg, app, request, advance: (ms: number) => clock.advance(ms) }
}

t.test('the first occurrence is logged at once; the rest of the interval is one line with a count', async (t) => {
  const { agg, app, request, advance } = setup()
  for (let i = 0; i < 1000; i++) agg.warn(request, 'verifier.keys_unavailable', { reason: 'jwks_unavailable' }, 'cannot check')
  t.equal(request.lines.length, 1, 'the first, in full, through the request logger')
  t.same(request.lines[0], { obj: { reason: 'jwks_unavailable', event: 'verifier.keys_unavailable' }, msg: 'cannot check' })
  t.equal(app.lines.length, 0, 'nothing more until the interval ends')
  advance(9_999)
  agg.flush()
  t.equal(app.lines.length, 0)
  advance(1)
  agg.flush()
  t.same(app.lines, [{ obj: { event: 'verifier.keys_unavailable', count: 999, interval_ms: 10_000 }, msg: 'cannot check (repeated)' }])

  // Still repeating: the next interval is counted too, not logged in full again.
  for (let i = 0; i < 50; i++) agg.warn(request, 'verifier.keys_unavailable', {}, 'cannot check')
  t.equal(request.lines.length, 1)
  advance(10_000)
  agg.warn(request, 'verifier.keys_unavailable', {}, 'cannot check') // a late one closes the interval itself
  t.equal(app.lines.length, 2)
  t.equal(app.lines[1]!.obj.count, 50)

  // Quiet for a whole interval: forgotten, and the next occurrence is logged in full.
  advance(10_000)
  agg.flush()
  t.equal(app.lines[2]!.obj.count, 1)
  advance(10_000)
  agg.flush()
  t.equal(agg.size, 0, 'a quiet key is forgotten')
  agg.warn(request, 'verifier.keys_unavailable', {}, 'cannot check')
  t.equal(request.lines.length, 2, 'logged in full after a quiet interval')
})

t.test('keys are aggregated separately; memory is bounded by maxKeys', async (t) => {
  const { agg, app, request, advance } = setup({ maxKeys: 4 })
  for (let round = 0; round < 10; round++) for (let k = 0; k < 100; k++) agg.warn(request, `event.${k}`, {}, 'm')
  t.ok(agg.size <= 4, `tracked keys: ${agg.size}`)
  t.equal(request.lines.length, 4, 'three keys and the first of the overflow, in full')
  advance(10_000)
  agg.flush()
  const total = app.lines.reduce((n, l) => n + (l.obj.count as number), 0)
  t.equal(total + request.lines.length, 1000, 'every occurrence is either logged or counted')
  t.ok(app.lines.some((l) => l.obj.event === OVERFLOW_KEY))
})

t.test('close() writes what is still counted', async (t) => {
  const { agg, app, request } = setup()
  agg.warn(request, 'a', {}, 'm')
  agg.warn(request, 'a', {}, 'm')
  agg.close()
  t.same(app.lines.map((l) => l.obj), [{ event: 'a', count: 1, interval_ms: 10_000 }])
})

t.test('options are validated', async (t) => {
  const logger = recorder()
  t.throws(() => new LogAggregator({ logger, intervalMs: 0 }), /intervalMs/)
  t.throws(() => new LogAggregator({ logger, maxKeys: 1 }), /maxKeys/)
})
