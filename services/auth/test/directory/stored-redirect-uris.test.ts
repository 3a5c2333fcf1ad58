/**
 * Client records written to Redis before redirect URIs were restricted (issue 12, finding 10:
 * https, loopback http, or a private-use scheme) are read again on every lookup. A record holding
 * a URI the rules now refuse must neither keep that URI usable nor take the client, or the whole
 * `clients list`, down with a 503 until someone edits Redis by hand: the refused URIs are left out.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { privateRedis } from '../helpers.js'
import { RedisClientDirectory } from '../../src/directory/redis-directory.js'
import { clientRecordKey } from '../../src/store/key-names.js'

const { redis, admin } = await privateRedis(t)

t.test('a stored record with URIs the rules now refuse: those URIs are gone, the client works', async (t) => {
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`
  const dir = new RedisClientDirectory({ redis, keyPrefix, changes: { announce: async () => undefined } })
  const added = await dir.add({
    client_id: 'legacy',
    client_secret_hash: `sha256:${'A'.repeat(43)}`,
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid',
    audience: 'api://resource',
    redirect_uris: ['https://app.example.com/cb'],
    post_logout_redirect_uris: ['https://app.example.com/bye'],
    jwks: null,
    backchannel_logout_uri: 'https://app.example.com/bcl',
  })
  t.equal(added.status, 'created')
  // As an older version wrote it: plain http to a host on the network, javascript:, a bare scheme.
  const key = clientRecordKey('legacy', keyPrefix)
  const doc = JSON.parse(String(await admin.call('HGET', key, 'config'))) as Record<string, unknown>
  doc.redirect_uris = ['https://app.example.com/cb', 'http://intranet.example.com/cb', 'myapp:/cb']
  doc.post_logout_redirect_uris = ['https://app.example.com/bye', 'javascript:alert(1)']
  doc.backchannel_logout_uri = 'http://intranet.example.com/bcl'
  await admin.call('HSET', key, 'config', JSON.stringify(doc))

  const client = await dir.get('legacy')
  t.ok(client, 'the client is found, not a 503')
  t.same(client!.redirectUris, ['https://app.example.com/cb'])
  t.same(client!.postLogoutRedirectUris, ['https://app.example.com/bye'])
  t.equal(client!.backchannelLogoutUri, undefined, 'no logout token over plain http to the network')
  const listed = await dir.list()
  t.same(listed.clients.map((c) => c.id), ['legacy'], 'clients list works')
})
