import type { Cluster, Redis } from 'ioredis'
import type { ClientDirectory } from '../directory/clients.js'
import type { AuthConfig } from '../config.js'
import type { KeyRing } from '../keys/signing-keys.js'
import type { AuthMetrics } from '../runtime/metrics.js'
import type { BackchannelLogout } from './backchannel.js'
import { QueuedBackchannelLogout } from './queued-backchannel.js'
import { MemoryLogoutQueue, type LogoutQueue } from './queue.js'
import { RedisLogoutQueue } from './redis-logout-queue.js'
import { BackchannelWorker, type WorkerLog } from './worker.js'

/**
 * The service's back-channel logout: the queue (Redis when the deployment has it, so a job
 * survives a restart and any replica delivers it; memory otherwise), what `sessionEnded` does,
 * and the worker, started here and stopped by the runtime's close().
 */
export function backchannelLogoutFor(d: {
  config: AuthConfig
  clients: Pick<ClientDirectory, 'get'>
  keys: KeyRing
  clock: () => number
  log: WorkerLog
  metrics: AuthMetrics
  redis?: Redis | Cluster
}): { logout: BackchannelLogout; worker: BackchannelWorker; queue: LogoutQueue } {
  const queue: LogoutQueue = d.redis ? new RedisLogoutQueue({ redis: d.redis, clock: d.clock }) : new MemoryLogoutQueue({ clock: d.clock })
  const logout = new QueuedBackchannelLogout({ queue, clients: d.clients, clock: d.clock, log: d.log, metrics: d.metrics })
  const worker = new BackchannelWorker({
    queue,
    clients: d.clients,
    keys: d.keys,
    issuer: d.config.issuer,
    clock: d.clock,
    log: d.log,
    metrics: d.metrics,
    timeoutMs: d.config.backchannelLogout.timeout * 1000,
    retries: d.config.backchannelLogout.retries,
  })
  worker.start()
  return { logout, worker, queue }
}
