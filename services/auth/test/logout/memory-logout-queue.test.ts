import t from 'tap'
import { MemoryLogoutQueue } from '../../src/logout/queue.js'
import { logoutQueueContract } from './logout-queue-contract.js'

t.test('contract', async (t) => {
  logoutQueueContract(t, async ({ clock, maxJobs }) => {
    const queue = new MemoryLogoutQueue({ clock, ...(maxJobs !== undefined ? { maxJobs } : {}) })
    return { queue, twin: async () => queue, close: async () => undefined }
  })
})

t.test('rejects a bad cap', async (t) => {
  t.throws(() => new MemoryLogoutQueue({ maxJobs: 0 }), /maxJobs/)
})
