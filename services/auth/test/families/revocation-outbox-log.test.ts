/**
 * The Cluster outbox's events while the recent set's node is down (issue 20, defect 6: log
 * floods): every pass fails every pending entry, each event counts in the metrics, but only an
 * entry's 1st, 2nd, 4th, 8th, … failure is logged, so 100 entries failing 40 times each write
 * about 700 lines, not 4,000.
 */
import t from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { RevocationOutbox, shouldLogAnnouncement, type AnnouncementEvent } from '../../src/families/revocation-outbox.js'

const NOW_S = 1_700_000_000

t.test('a long failure of the recent set is counted in full and logged sparsely', async (t) => {
  const clock = new ManualClock(NOW_S * 1000)
  const tries = new Map<string, number>()
  const events: AnnouncementEvent[] = []
  const outbox = new RevocationOutbox({
    clock: clock.now,
    minDelayMs: 1,
    maxDelayMs: 1,
    write: async (sid) => {
      const n = (tries.get(sid) ?? 0) + 1
      tries.set(sid, n)
      if (n <= 40) throw new Error('CLUSTERDOWN The cluster is down')
    },
    onEvent: (e) => events.push(e),
  })
  t.teardown(() => outbox.close())
  for (let i = 0; i < 100; i++) outbox.add(`fam-${String(i).padStart(3, '0')}`, NOW_S + 900)
  t.ok(await outbox.drain(30_000), 'drained once the node is back')

  const failed = events.filter((e) => e.kind === 'failed')
  t.equal(failed.length, 4000, 'every failure is an event (the metrics count them all)')
  t.equal(events.filter((e) => e.kind === 'delivered').length, 100)
  const logged = events.filter(shouldLogAnnouncement)
  t.equal(logged.filter((e) => e.kind === 'failed').length, 100 * 6, 'failures logged at attempts 1, 2, 4, 8, 16 and 32 of each entry')
  t.equal(logged.filter((e) => e.kind === 'delivered').length, 100, 'each recovery is logged')
  t.same(
    logged.filter((e) => e.sid === 'fam-000').map((e) => [e.kind, e.attempts]),
    [['failed', 1], ['failed', 2], ['failed', 4], ['failed', 8], ['failed', 16], ['failed', 32], ['delivered', 41]],
    'the first failure is never hidden',
  )
  t.ok(shouldLogAnnouncement({ kind: 'dropped', sid: 'x', attempts: 7 }), 'a drop is always logged')
})
