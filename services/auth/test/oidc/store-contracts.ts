import type { Test } from 'tap'
import type { ManualClock } from '@gatehouse/test-harness'
import type { AuthorizationCodeStore, CodeGrant } from '../../src/authorize/codes.js'
import type { ReplayStore } from '../../src/directory/replay.js'
import type { LoginSessionStore } from '../../src/signin/sessions.js'

/**
 * Conformance suites for the login-session, authorization-code and assertion-replay stores:
 * the memory and the Redis implementation run exactly these. Time is an injected clock that the
 * tests advance; nothing sleeps.
 */
/** Where the suites' clock starts (ms). */
export const CLOCK_START = 1_800_000_000_000

export interface Stores {
  clock: ManualClock
  sessions: LoginSessionStore
  codes: AuthorizationCodeStore
  replay: ReplayStore
}

/** Sessions are built with a 1 h TTL, codes with a 60 s lifetime and a 10 min spent marker. */
export type MakeStores = () => Promise<Stores>

export const SESSION_TTL_MS = 60 * 60_000

const grant: CodeGrant = {
  clientId: 'web',
  redirectUri: 'https://app.example/cb',
  codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  scope: 'openid profile',
  userId: 'u_1',
  sessionId: 'AAAAAAAAAAAAAAAAAAAAAA',
  authTime: 1_800_000_000,
  nonce: 'n-0S6_WzA2Mj',
  // RFC 9449 §10: the DPoP key the exchange must prove travels with the code.
  dpopJkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
  resources: ['api://resource', 'api://reports'],
  // How the user authenticated and the acr values asked: the tokens' amr/acr (mfa/assurance.ts).
  amr: ['pwd', 'otp', 'mfa'],
  acrValues: ['http://schemas.openid.net/pape/policies/2007/06/multi-factor'],
}

export function storeContracts(t: Test, make: MakeStores): void {
  t.test('sessions: start, resolve by cookie value, get by id, end', async (t) => {
    const { sessions, clock } = await make()
    const { session, token } = await sessions.start({ userId: 'u_1', authTime: 1_800_000_000 })
    t.match(session.id, /^[A-Za-z0-9_-]{22}$/)
    t.match(token, new RegExp(`^${session.id}\\.[A-Za-z0-9_-]{43}$`))
    t.equal(session.expiresAt, clock.ms + SESSION_TTL_MS)
    t.same(await sessions.resolve(token), session)
    t.same(await sessions.get(session.id), session)
    t.same(await sessions.end(session.id), session)
    t.equal(await sessions.resolve(token), null, 'gone after end')
    t.equal(await sessions.get(session.id), null)
    t.equal(await sessions.end(session.id), null, 'ending twice is harmless')
  })

  t.test('sessions: a wrong secret, a malformed value or another id resolve to nothing', async (t) => {
    const { sessions } = await make()
    const { session, token } = await sessions.start({ userId: 'u_1', authTime: 1 })
    const secret = token.split('.')[1]!
    const flipped = (secret[0] === 'A' ? 'B' : 'A') + secret.slice(1)
    t.equal(await sessions.resolve(`${session.id}.${flipped}`), null, 'wrong secret')
    for (const bad of ['', session.id, `${session.id}.`, `${token}x`, `x${token}`, 'a.b.c', '{x}.y', 'é'.repeat(70)]) {
      t.equal(await sessions.resolve(bad), null, `malformed ${JSON.stringify(bad.slice(0, 20))}`)
    }
    t.equal(await sessions.get('not an id'), null)
    t.equal(await sessions.end('{bad}'), null)
  })

  t.test('sessions: expire with the injected clock', async (t) => {
    const { sessions, clock } = await make()
    const { session, token } = await sessions.start({ userId: 'u_1', authTime: 1 })
    clock.advance(SESSION_TTL_MS - 1)
    t.ok(await sessions.resolve(token), 'alive just before')
    clock.advance(1)
    t.equal(await sessions.resolve(token), null, 'expired')
    t.equal(await sessions.get(session.id), null)
    t.equal(await sessions.end(session.id), null)
  })

  t.test('sessions: re-keying keeps the id, replaces the secret, renews auth_time', async (t) => {
    const { sessions, clock } = await make()
    const first = await sessions.start({ userId: 'u_1', authTime: 100 })
    clock.advance(1000)
    const second = await sessions.start({ userId: 'u_1', authTime: 200, reuseId: first.session.id })
    t.equal(second.session.id, first.session.id)
    t.not(second.token, first.token)
    t.equal(await sessions.resolve(first.token), null, 'the old secret is dead (session fixation)')
    t.equal((await sessions.resolve(second.token))?.authTime, 200)
    const other = await sessions.start({ userId: 'u_2', authTime: 1 })
    t.not(other.session.id, first.session.id, 'new sessions get new ids')
  })

  t.test('sessions: listed under their user with device, address, last use and clients; ended one by one or all at once', async (t) => {
    const { sessions, clock } = await make()
    const a = await sessions.start({ userId: 'u_1', authTime: 1, userAgent: 'Mozilla/5.0 (X11) Firefox/140.0', address: '203.0.113.7' })
    clock.advance(1000)
    const b = await sessions.start({ userId: 'u_1', authTime: 2, userAgent: 'x'.repeat(1000) + '\u0000', address: '::1' })
    const other = await sessions.start({ userId: 'u_2', authTime: 3 })
    t.same(a.session.clientIds, [])
    t.equal(a.session.lastUsedAt, a.session.createdAt)
    t.equal(a.session.userAgent, 'Mozilla/5.0 (X11) Firefox/140.0')
    t.equal(a.session.address, '203.0.113.7')
    t.equal(b.session.userAgent, 'x'.repeat(256), 'bounded, control characters dropped')
    t.equal(other.session.userAgent, undefined)

    clock.advance(5000)
    await sessions.recordUse(a.session.id, 'web')
    await sessions.recordUse(a.session.id, 'spa')
    await sessions.recordUse(a.session.id, 'web')
    await sessions.recordUse(a.session.id, 'bad id with spaces')
    await sessions.recordUse('not-a-session', 'web')
    const used = await sessions.get(a.session.id)
    t.same(used?.clientIds, ['web', 'spa'], 'each client once, in order')
    t.equal(used?.lastUsedAt, clock.ms)
    t.equal(used?.expiresAt, a.session.expiresAt, 'a use never extends the session')
    t.same((await sessions.resolve(a.token))?.clientIds, ['web', 'spa'])

    const listed = await sessions.listByUser('u_1')
    t.same(listed.map((s) => s.id), [a.session.id, b.session.id], 'oldest first')
    t.same(listed[0], used)
    t.same(await sessions.listByUser('u_nobody'), [])

    // Re-keying (same user signs in again) keeps the clients that hold tokens of the session.
    const rekeyed = await sessions.start({ userId: 'u_1', authTime: 9, reuseId: a.session.id, userAgent: 'new' })
    t.same(rekeyed.session.clientIds, ['web', 'spa'])
    t.equal((await sessions.listByUser('u_1')).length, 2, 'still two sessions')

    t.same((await sessions.end(b.session.id))?.id, b.session.id)
    t.same((await sessions.listByUser('u_1')).map((s) => s.id), [a.session.id])

    const c = await sessions.start({ userId: 'u_1', authTime: 10 })
    const ended = await sessions.endByUser('u_1')
    t.same(ended.map((s) => s.id).sort(), [a.session.id, c.session.id].sort())
    t.same(ended.find((s) => s.id === a.session.id)?.clientIds, ['web', 'spa'], 'an ended session names its clients')
    t.equal(await sessions.resolve(rekeyed.token), null, 'every cookie of the user is dead')
    t.equal(await sessions.resolve(c.token), null)
    t.same(await sessions.listByUser('u_1'), [])
    t.same(await sessions.endByUser('u_1'), [], 'ending again is harmless')
    t.ok(await sessions.resolve(other.token), "another user's session lives on")
  })

  t.test('sessions: expired sessions leave the listing', async (t) => {
    const { sessions, clock } = await make()
    await sessions.start({ userId: 'u_1', authTime: 1 })
    clock.advance(SESSION_TTL_MS / 2)
    const late = await sessions.start({ userId: 'u_1', authTime: 2 })
    clock.advance(SESSION_TTL_MS / 2)
    t.same((await sessions.listByUser('u_1')).map((s) => s.id), [late.session.id])
    t.same((await sessions.endByUser('u_1')).map((s) => s.id), [late.session.id])
  })

  t.test('codes: issue and consume once', async (t) => {
    const { codes } = await make()
    const code = await codes.issue(grant)
    t.match(code, /^[A-Za-z0-9_-]{43}$/, '256 random bits')
    t.same(await codes.consume(code), { status: 'ok', grant })
    t.same(await codes.consume(code), { status: 'reused', grant }, 'second use is a replay (no family recorded yet)')
    t.same(await codes.consume(await codes.issue(grant)), { status: 'ok', grant }, 'codes are independent')
  })

  t.test('codes: a grant from before resource indicators comes back without resources', async (t) => {
    const { codes } = await make()
    const { resources: _, ...older } = grant
    const out = await codes.consume(await codes.issue(older))
    t.same(out, { status: 'ok', grant: older })
  })

  t.test('codes: a grant from before amr and acr_values comes back without them', async (t) => {
    const { codes } = await make()
    const { amr: _, acrValues: __, ...older } = grant
    t.same(await codes.consume(await codes.issue(older)), { status: 'ok', grant: older })
  })

  t.test('codes: a replay names the family the first use recorded', async (t) => {
    const { codes } = await make()
    const code = await codes.issue(grant)
    t.equal((await codes.consume(code)).status, 'ok')
    t.equal(await codes.recordFamily(code, 'fam-1'), 'recorded')
    t.same(await codes.consume(code), { status: 'reused', grant, familyId: 'fam-1' })
    t.same(await codes.consume(code), { status: 'reused', grant, familyId: 'fam-1' }, 'and every later one')
  })

  t.test('codes: a replay before the family is recorded is reported to the first use', async (t) => {
    const { codes } = await make()
    const code = await codes.issue(grant)
    t.equal((await codes.consume(code)).status, 'ok')
    t.equal((await codes.consume(code)).status, 'reused')
    t.equal(await codes.recordFamily(code, 'fam-2'), 'replayed')
  })

  t.test('codes: concurrent consumers, exactly one wins', async (t) => {
    const { codes } = await make()
    const code = await codes.issue(grant)
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => codes.consume(code)))
    t.equal(outcomes.filter((o) => o.status === 'ok').length, 1)
    t.equal(outcomes.filter((o) => o.status === 'reused').length, 7)
  })

  t.test('codes: expire after their lifetime; unknown and malformed codes are not found', async (t) => {
    const { codes, clock } = await make()
    const late = await codes.issue(grant)
    const inTime = await codes.issue(grant)
    clock.advance(59_999)
    t.equal((await codes.consume(inTime)).status, 'ok', 'just in time')
    clock.advance(1)
    t.same(await codes.consume(late), { status: 'expired' })
    t.same(await codes.consume(late), { status: 'not_found' }, 'an expired code is dropped')
    t.same(await codes.consume('A'.repeat(43)), { status: 'not_found' })
    for (const bad of ['', 'short', 'A'.repeat(44), '{'.repeat(43), late + ' ']) t.same(await codes.consume(bad), { status: 'not_found' })
    t.equal(await codes.recordFamily('nope', 'fam'), 'recorded', 'recording on an unknown code is harmless')
  })

  t.test('codes: the spent marker outlives the code lifetime', async (t) => {
    const { codes, clock } = await make()
    const code = await codes.issue(grant)
    t.equal((await codes.consume(code)).status, 'ok')
    await codes.recordFamily(code, 'fam-3')
    clock.advance(5 * 60_000)
    t.same(await codes.consume(code), { status: 'reused', grant, familyId: 'fam-3' }, 'a late replay still revokes')
  })

  t.test('replay: a (client, jti) is claimed once until it expires', async (t) => {
    const { replay, clock } = await make()
    const until = clock.ms + 60_000
    t.equal(await replay.claim('svc', 'jti-1', until), true)
    t.equal(await replay.claim('svc', 'jti-1', until), false, 'replay')
    t.equal(await replay.claim('other', 'jti-1', until), true, 'per client')
    t.equal(await replay.claim('svc', 'jti-2', until), true, 'per jti')
    const both = await Promise.all([replay.claim('svc', 'jti-3', until), replay.claim('svc', 'jti-3', until)])
    t.same(both.sort(), [false, true], 'concurrent claims: one wins')
  })
}
