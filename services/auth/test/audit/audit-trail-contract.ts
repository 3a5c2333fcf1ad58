import type { Test } from 'tap'
import type { AuditFields } from '../../src/audit/event.js'
import type { AuditTrail } from '../../src/audit/trail.js'
import { ManualClock } from '@gatehouse/test-harness'

/**
 * What every audit trail does, memory and PostgreSQL alike (audit/trail.ts): search filters,
 * newest-first keyset paging, retention, and no secret in a record.
 */
export interface TrailFixture {
  trail: AuditTrail
  clock: ManualClock
}

export type MakeTrail = (t: Test, opts: { retentionDays: number }) => Promise<TrailFixture>

const DAY = 86_400_000

export function auditTrailContract(t: Test, make: MakeTrail): void {
  t.test('search: each filter, and filters together', async (t) => {
    const { trail, clock } = await make(t, { retentionDays: 90 })
    const at = (seconds: number, fields: AuditFields) => {
      clock.ms = Date.UTC(2026, 0, 1) + seconds * 1000
      trail.record(fields)
    }
    at(1, { event: 'login.succeeded', sub: 'u_alice', client_id: 'web', ip: '198.51.100.1' })
    at(2, { event: 'login.failed', reason: 'bad_credentials', client_id: 'cli', ip: '203.0.113.7' })
    at(3, { event: 'login.locked', scope: 'user', client_id: 'cli', ip: '203.0.113.7' })
    at(4, { event: 'refresh_token.reuse_detected', family_id: 'fam1', client_id: 'cli', sub: 'u_bob', ip: '198.51.100.2', generation: 3 })
    at(5, { event: 'admin.user_disabled', actor: 'ops', user_id: 'u_bob', username: 'bob' })
    at(6, { event: 'admin.client_deleted', actor: 'ops', client_id: 'old' })
    at(7, { event: 'family.revoked', family_id: 'fam1', client_id: 'cli', sub: 'u_bob', reason: 'reuse' })
    await trail.flush()

    const names = async (q: Parameters<AuditTrail['search']>[0]) => (await trail.search(q)).events.map((e) => e.event)
    t.same(await names({ limit: 50 }), ['family.revoked', 'admin.client_deleted', 'admin.user_disabled', 'refresh_token.reuse_detected', 'login.locked', 'login.failed', 'login.succeeded'], 'newest first')
    t.same(await names({ limit: 50, userId: 'u_bob' }), ['family.revoked', 'admin.user_disabled', 'refresh_token.reuse_detected'], 'by user (sub or user_id)')
    t.same(await names({ limit: 50, clientId: 'cli' }), ['family.revoked', 'refresh_token.reuse_detected', 'login.locked', 'login.failed'])
    t.same(await names({ limit: 50, events: ['login.failed', 'login.locked'] }), ['login.locked', 'login.failed'], 'several event names')
    t.same(await names({ limit: 50, events: ['admin.*'] }), ['admin.client_deleted', 'admin.user_disabled'], 'a prefix')
    t.same(await names({ limit: 50, events: ['admin.*', 'login.succeeded'] }), ['admin.client_deleted', 'admin.user_disabled', 'login.succeeded'], 'a prefix and a name')
    t.same(await names({ limit: 50, address: '203.0.113.7' }), ['login.locked', 'login.failed'])
    const t0 = Date.UTC(2026, 0, 1)
    t.same(await names({ limit: 50, since: t0 + 3000, until: t0 + 5000 }), ['refresh_token.reuse_detected', 'login.locked'], 'since inclusive, until exclusive')
    t.same(await names({ limit: 50, userId: 'u_bob', clientId: 'cli', since: t0 + 5000 }), ['family.revoked'], 'filters combine with AND')
    t.same(await names({ limit: 50, userId: 'u_nobody' }), [])

    const [reuse] = (await trail.search({ limit: 1, events: ['refresh_token.reuse_detected'] })).events
    t.match(reuse, {
      time: t0 + 4000, event: 'refresh_token.reuse_detected', outcome: 'failure', actorType: 'client', actorId: 'cli',
      userId: 'u_bob', clientId: 'cli', address: '198.51.100.2', familyId: 'fam1', sessionId: null, details: { generation: 3 },
    })
    const [disabled] = (await trail.search({ limit: 1, events: ['admin.user_disabled'] })).events
    t.match(disabled, { outcome: 'success', actorType: 'operator', actorId: 'ops', userId: 'u_bob', details: { username: 'bob' } })
    const [failed] = (await trail.search({ limit: 1, events: ['login.failed'] })).events
    t.match(failed, { outcome: 'failure', actorType: null, actorId: null, address: '203.0.113.7', details: { reason: 'bad_credentials' } })
  })

  t.test('paging: newest first, keyset by time and id, nothing twice, nothing skipped', async (t) => {
    const { trail, clock } = await make(t, { retentionDays: 90 })
    // Several events in the same millisecond: the id orders them.
    for (let i = 0; i < 11; i++) {
      clock.ms = Date.UTC(2026, 0, 1) + Math.floor(i / 3) * 1000
      trail.record({ event: 'login.succeeded', sub: 'u_pager', client_id: 'web', n: i })
    }
    trail.record({ event: 'login.succeeded', sub: 'u_other', client_id: 'web', n: 99 })
    await trail.flush()
    const seen: number[] = []
    let cursor: string | undefined
    let pages = 0
    for (;;) {
      const page = await trail.search({ limit: 4, userId: 'u_pager', ...(cursor ? { cursor } : {}) })
      pages++
      seen.push(...page.events.map((e) => e.details.n as number))
      if (page.cursor === null) break
      cursor = page.cursor
    }
    t.equal(pages, 3)
    t.same(seen, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0], 'every event once, newest first')
    const exact = await trail.search({ limit: 11, userId: 'u_pager' })
    t.equal(exact.cursor, null, 'a page that holds the rest has no next cursor')
    await t.rejects(trail.search({ limit: 5, cursor: 'bm90LWEtY3Vyc29y' }), RangeError, 'a cursor it did not make')
  })

  t.test('retention: only events older than AUDIT_RETENTION_DAYS go; 0 keeps everything', async (t) => {
    const { trail, clock } = await make(t, { retentionDays: 30 })
    const now = Date.UTC(2026, 5, 1)
    clock.ms = now - 40 * DAY
    trail.record({ event: 'login.failed', reason: 'bad_credentials', n: 'old' })
    clock.ms = now - 30 * DAY - 1
    trail.record({ event: 'login.failed', reason: 'bad_credentials', n: 'just-too-old' })
    clock.ms = now - 29 * DAY
    trail.record({ event: 'login.failed', reason: 'bad_credentials', n: 'kept' })
    clock.ms = now
    trail.record({ event: 'login.failed', reason: 'bad_credentials', n: 'new' })
    await trail.flush()
    t.equal(await trail.prune(), 2)
    t.same((await trail.search({ limit: 10 })).events.map((e) => e.details.n), ['new', 'kept'])
    t.equal(await trail.prune(), 0, 'nothing left to delete')

    const forever = await make(t, { retentionDays: 0 })
    forever.clock.ms = now - 3650 * DAY
    forever.trail.record({ event: 'login.failed', n: 'ancient' })
    forever.clock.ms = now
    await forever.trail.flush()
    t.equal(await forever.trail.prune(), 0)
    t.equal((await forever.trail.search({ limit: 10 })).events.length, 1, 'kept forever')
  })

  t.test('no secret reaches a record: secret-named fields and token-like values are censored', async (t) => {
    const { trail } = await make(t, { retentionDays: 90 })
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1X2FsaWNlIn0.c2lnbmF0dXJl'
    trail.record({
      event: 'admin.user_added',
      actor: 'ops',
      user_id: 'u_x',
      password: 'hunter2-password',
      refresh_token: 'rt-secret-value',
      password_hash: '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
      nested: { client_secret: 'cs-secret-value', code: 'authz-code-value', accessToken: 'at-value' },
      note: jwt,
      token_type: 'refresh_token',
      token_endpoint_auth_method: 'client_secret_basic',
    })
    await trail.flush()
    const [e] = (await trail.search({ limit: 1 })).events
    const text = JSON.stringify(e)
    for (const secret of ['hunter2-password', 'rt-secret-value', '$argon2id$', 'cs-secret-value', 'authz-code-value', 'at-value', jwt]) t.notOk(text.includes(secret), `no ${secret}`)
    t.match(e!.details, {
      password: '[redacted]', refresh_token: '[redacted]', password_hash: '[redacted]', note: '[redacted]',
      nested: { client_secret: '[redacted]', code: '[redacted]', accessToken: '[redacted]' },
      token_type: 'refresh_token', token_endpoint_auth_method: 'client_secret_basic',
    }, 'descriptive fields stay')
  })

  t.test('record never throws, even for what it cannot keep', async (t) => {
    const { trail } = await make(t, { retentionDays: 90 })
    const circular: Record<string, unknown> = { event: 'admin.odd', actor: 'ops' }
    circular.self = circular
    t.doesNotThrow(() => trail.record(circular as AuditFields))
    t.doesNotThrow(() => trail.record({ event: 'admin.big', actor: 'ops', blob: 'x'.repeat(100_000), many: Array.from({ length: 1000 }, (_, i) => i) }))
    await trail.flush()
    const big = (await trail.search({ limit: 5, events: ['admin.big'] })).events[0]
    t.ok(big === undefined || JSON.stringify(big.details).length <= 4096, 'details stay bounded')
    await trail.close()
    t.doesNotThrow(() => trail.record({ event: 'admin.after_close', actor: 'ops' }), 'after close: dropped, not thrown')
  })
}
