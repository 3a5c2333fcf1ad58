/**
 * OpenID Connect Back-Channel Logout 1.0 (DESIGN §10.1): when a login session ends, every client
 * that received tokens in it is told, by a logout token POSTed to its `backchannel_logout_uri`.
 *
 * `sessionEnded` only records the work (durably where the deployment has Redis) and returns;
 * delivery, retries and backoff happen in the background, so ending a session never waits for a
 * client's receiver.
 */
export interface SessionEnded {
  /** The ended login session's public id: the ID tokens' and logout token's `sid`. */
  sid: string
  /** The user (`sub`). */
  sub: string
  /** Clients that received tokens in the session; those with a `backchannel_logout_uri` are told. */
  clientIds: readonly string[]
}

export interface BackchannelLogout {
  /** Queues the logout tokens for the session's clients. Throws StoreUnavailable when it cannot queue. */
  sessionEnded(event: SessionEnded): Promise<void>
}

/** Tells nobody: for deployments and tests that deliver no back-channel logout. */
export class NoopBackchannelLogout implements BackchannelLogout {
  async sessionEnded(): Promise<void> {}
}
