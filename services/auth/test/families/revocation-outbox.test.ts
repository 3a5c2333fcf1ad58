/**
 * The Cluster outbox of the recent-revocations set (families/revocation-outbox.ts): a write that
 * fails is retried until it succeeds, never dropped silently; memory is bounded; an entry past
 * its exp (its access tokens are dead anyway) is dropped and reported.
 */
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { RevocationOutbox, type AnnouncementEvent } from '../../src/families/revocation-outbox.js'

const NOW_S = 1_700_000_000

t.test('a failed write is retried with backoff until it succeeds, and reported', async (t) => {
  const clock = new ManualClock(NOW_S * 1000)
  const written: [string, number][] = []
  let failures = 2
  const events: AnnouncementEvent[] = []
  const outbox = new RevocationOutbox({
    clock: clock.now,
    minDelayMs: 1,
    maxDelayMs: 4,
    write: async (sid, exp) => {
      if (failures-- > 0) throw new Error('Connection is closed.')
      written.push([sid, exp])
    },
    onEvent: (e) => events.push(e),
  })
  t.teardown(() => outbox.close())
  outbox.add('fam-a', NOW_S + 900)
  t.equal(outbox.size, 1)
  t.ok(await outbox.drain(), 'drained')
  t.same(written, [['fam-a', NOW_S + 900]])
  t.same(events.map((e) => [e.kind, e.attempts]), [['failed', 1], ['failed', 2], ['delivered', 3]])
  t.equal(events[0]?.error, 'Connection is closed.')
  t.equal(outbox.size, 0)
})

t.test('the same family queued twice is written once, with the later exp', async (t) => {
  const clock = new ManualClock(NOW_S * 1000)
  const written: [string, number][] = []
  let release: () => void = () => undefined
  const gate = new Promise<void>((r) => (release = r))
  const outbox = new RevocationOutbox({
    clock: clock.now,
    write: async (sid, exp) => {
      await gate
      written.push([sid, exp])
    },
  })
  t.teardown(() => outbox.close())
  outbox.add('fam-a', NOW_S + 10)
  outbox.add('fam-a', NOW_S + 20)
  outbox.add('fam-a', NOW_S + 5)
  release()
  t.ok(await outbox.drain())
  t.same(written, [['fam-a', NOW_S + 20]])
})

t.test('bounded: when full the entry that expires first is dropped and reported; expired entries too', async (t) => {
  const clock = new ManualClock(NOW_S * 1000)
  const written: string[] = []
  let up = false
  const events: AnnouncementEvent[] = []
  const outbox = new RevocationOutbox({
    clock: clock.now,
    maxEntries: 2,
    minDelayMs: 1,
    maxDelayMs: 2,
    write: async (sid) => {
      if (!up) throw new Error('CLUSTERDOWN')
      written.push(sid)
    },
    onEvent: (e) => events.push(e),
  })
  t.teardown(() => outbox.close())
  outbox.add('soon', NOW_S + 10)
  outbox.add('later', NOW_S + 100)
  outbox.add('latest', NOW_S + 200)
  t.equal(outbox.size, 2)
  t.match(events.filter((e) => e.kind === 'dropped'), [{ sid: 'soon', error: 'outbox full' }])
  clock.advance(150_000) // 'later' is past its exp: useless now
  up = true
  t.ok(await outbox.drain())
  t.same(written, ['latest'])
  t.match(events.filter((e) => e.kind === 'dropped'), [{ sid: 'soon' }, { sid: 'later', error: 'expired before it could be written' }])
})
