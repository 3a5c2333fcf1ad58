import { parseAuthFileConfig, redirectUriProblem, type ClientConfig } from './config-file.js'
import { backchannelLogoutUriProblem } from '../logout/client-metadata.js'
import { StoreUnavailable } from '../store/types.js'

/**
 * A client as a store keeps it (Redis or PostgreSQL): its config-file form without any secret,
 * and the secret's hash beside it. Read back through the config schema again: the record was
 * validated when it was added, and re-checking costs little and keeps a hand-edited record from
 * granting more than the schema allows.
 *
 * A record an older version stored may hold redirect URIs the rules now refuse (config-file.ts
 * redirectUriProblem: `http` to a network host, `javascript:`, a scheme without a dot) or a
 * back-channel URI over plain http. Those are left out, so they cannot be used, and the client
 * keeps working with the rest instead of every lookup and `clients list` failing with a 503.
 */
export function storedClient(doc: unknown, secretHash: string | null | undefined, store: string): ClientConfig {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new StoreUnavailable(`${store}: malformed client record`)
  const withSecret = withoutRefusedUris(secretHash === undefined || secretHash === null ? doc : { ...doc, client_secret_hash: secretHash })
  const { config, problems } = parseAuthFileConfig({ clients: [withSecret] }, 'client record')
  const c = config.clients[0]
  if (problems.length > 0 || c === undefined) throw new StoreUnavailable(`${store}: malformed client record (${problems[0] ?? 'empty'})`)
  return c
}

function withoutRefusedUris(doc: object): object {
  const d = { ...doc } as Record<string, unknown>
  for (const field of ['redirect_uris', 'post_logout_redirect_uris']) {
    const list = d[field]
    if (Array.isArray(list)) d[field] = list.filter((u) => typeof u !== 'string' || redirectUriProblem(u) === null)
  }
  if (typeof d.backchannel_logout_uri === 'string' && backchannelLogoutUriProblem(d.backchannel_logout_uri) !== null) delete d.backchannel_logout_uri
  return d
}
