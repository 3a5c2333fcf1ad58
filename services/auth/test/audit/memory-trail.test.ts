import t from 'tap'
import { MemoryAuditTrail } from '../../src/audit/trail.js'
import { ManualClock } from '@gatehouse/test-harness'
import { auditTrailContract } from './audit-trail-contract.js'

auditTrailContract(t, async (_t, { retentionDays }) => {
  const clock = new ManualClock()
  return { trail: new MemoryAuditTrail({ clock: clock.now, retentionDays }), clock }
})

t.test('the memory ring keeps the newest events only', async (t) => {
  const clock = new ManualClock()
  const trail = new MemoryAuditTrail({ clock: clock.now, retentionDays: 0, capacity: 3 })
  for (let i = 0; i < 5; i++) trail.record({ event: 'login.failed', n: i })
  t.same((await trail.search({ limit: 10 })).events.map((e) => e.details.n), [4, 3, 2])
  t.equal(trail.durable, false)
})
