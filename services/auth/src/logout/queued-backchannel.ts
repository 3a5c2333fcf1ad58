import type { ClientDirectory } from '../directory/clients.js'
import type { AuthMetrics } from '../runtime/metrics.js'
import type { BackchannelLogout, SessionEnded } from './backchannel.js'
import type { LogoutQueue } from './queue.js'

/**
 * `sessionEnded` as the service and the CLI run it: one queued job per client of the session that
 * registered a `backchannel_logout_uri` (OIDC Back-Channel Logout 1.0 §2.2), due at once. The
 * worker (worker.ts) of whichever replica claims it delivers it; the CLI only enqueues.
 * `backchannel_logout_session_required` needs no branch here: every logout token carries `sid`.
 */
export class QueuedBackchannelLogout implements BackchannelLogout {
  constructor(
    private readonly d: {
      queue: LogoutQueue
      clients: Pick<ClientDirectory, 'get'>
      clock: () => number
      log: { info(obj: Record<string, unknown>, msg?: string): void; warn(obj: Record<string, unknown>, msg?: string): void }
      metrics?: AuthMetrics
    },
  ) {}

  async sessionEnded(event: SessionEnded): Promise<void> {
    for (const clientId of new Set(event.clientIds)) {
      const client = await this.d.clients.get(clientId)
      if (client?.backchannelLogoutUri === undefined) continue
      const outcome = await this.d.queue.enqueue({ clientId, sid: event.sid, sub: event.sub }, this.d.clock())
      if (outcome === 'full') {
        this.d.metrics?.backchannelLogout.inc({ outcome: 'dropped' })
        this.d.log.warn({ event: 'backchannel_logout.dropped', client_id: clientId, sid: event.sid, sub: event.sub, reason: 'queue_full' }, 'back-channel logout queue is full')
        continue
      }
      if (outcome === 'queued') this.d.log.info({ event: 'backchannel_logout.queued', client_id: clientId, sid: event.sid, sub: event.sub }, 'back-channel logout queued')
    }
  }
}
