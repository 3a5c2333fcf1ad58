import type { Test } from 'tap'
import { PENDING_LEASE_MS, type LoginCheck, type LoginLimiter, type LoginLimitPolicy, type LoginTicket } from '../../src/signin/login-limiter.js'
import type { ManualClock } from '@gatehouse/test-harness'

/**
 * The login limiter's rules (login-limiter.ts), run against the memory and the Redis
 * implementation alike, with an injected clock.
 */
export const POLICY: LoginLimitPolicy = {
  maxPerUser: 5,
  maxPerAddress: 20,
  windowMs: 60_000,
  lockoutMs: 120_000,
  knownAddressTtlMs: 24 * 3600_000,
}

export interface LimiterFixture {
  limiter: LoginLimiter
  clock: ManualClock
}

function admitted(t: Test, check: LoginCheck, message: string): LoginTicket {
  if (check.status !== 'admitted') {
    t.fail(`${message}: ${check.status} (${check.scope})`)
    throw new Error(check.status)
  }
  t.pass(message)
  return check.ticket
}

/** `n` attempts with a wrong password; returns what each attempt saw. */
async function fail(limiter: LoginLimiter, username: string, address: string, n: number): Promise<LoginCheck[]> {
  const out: LoginCheck[] = []
  for (let i = 0; i < n; i++) {
    const c = await limiter.attempt(username, address)
    if (c.status === 'admitted') await limiter.failed(c.ticket)
    out.push(c)
  }
  return out
}

function counted(c: LoginCheck): { user: number; address: number } | string {
  return c.status === 'admitted' ? c.counted : c.status
}

export function loginLimiterContract(t: Test, make: () => Promise<LimiterFixture>): void {
  t.test('a username admits max failures in the window, then locks; the lockout ends', async (t) => {
    const { limiter, clock } = await make()
    const checks = await fail(limiter, 'alice', '192.0.2.1', POLICY.maxPerUser)
    t.same(checks.map((c) => c.status === 'admitted' && c.counted.user), [0, 1, 2, 3, 4], 'each attempt sees what was counted before it')
    const locked = await limiter.attempt('alice', '192.0.2.1')
    t.match(locked, { status: 'locked', scope: 'user', lockedNow: true, retryAfterMs: POLICY.lockoutMs })
    clock.advanceSeconds(60)
    const still = await limiter.attempt('ALICE', '198.51.100.7')
    t.match(still, { status: 'locked', scope: 'user', lockedNow: false, retryAfterMs: 60_000 }, 'case-insensitive, any address, not re-counted')
    // Hammering during the lockout does not extend it.
    await fail(limiter, 'alice', '192.0.2.1', 20)
    clock.advanceSeconds(60)
    const after = await limiter.attempt('alice', '192.0.2.1')
    t.match(after, { status: 'admitted', counted: { user: 0 } }, 'the lockout ended on time, and paid for the failures before it')
  })

  t.test('the window slides: old failures stop counting', async (t) => {
    const { limiter, clock } = await make()
    await fail(limiter, 'bob', '192.0.2.2', POLICY.maxPerUser - 1)
    clock.advanceSeconds(POLICY.windowMs / 1000 / 2)
    await fail(limiter, 'bob', '192.0.2.2', 1)
    clock.advanceSeconds(POLICY.windowMs / 1000 / 2 + 1)
    t.match(await limiter.attempt('bob', '192.0.2.2'), { status: 'admitted', counted: { user: 1 } }, 'only the failure from the second half is still in the window')
  })

  t.test('usernames that do not exist lock the same way (nothing tells them apart)', async (t) => {
    const { limiter } = await make()
    await fail(limiter, 'no-such-user', '192.0.2.3', POLICY.maxPerUser)
    t.match(await limiter.attempt('no-such-user', '192.0.2.3'), { status: 'locked', scope: 'user' })
  })

  t.test('an address admits maxPerAddress failures over any usernames, then locks; other addresses are unaffected', async (t) => {
    const { limiter, clock } = await make()
    for (let i = 0; i < POLICY.maxPerAddress; i++) {
      const [c] = await fail(limiter, `user-${i}`, '203.0.113.9', 1)
      t.ok(c!.status === 'admitted' && c!.counted.address === i, `attempt ${i} admitted`)
    }
    t.match(await limiter.attempt('someone-else', '203.0.113.9'), { status: 'locked', scope: 'address', lockedNow: true })
    t.match(await limiter.attempt('someone-else', '203.0.113.10'), { status: 'admitted' }, 'the next address is its own bucket')
    clock.advanceSeconds(POLICY.lockoutMs / 1000)
    t.match(await limiter.attempt('someone-else', '203.0.113.9'), { status: 'admitted' }, 'the address lockout ends')
  })

  t.test('IPv6 addresses share a bucket per /64', async (t) => {
    const { limiter } = await make()
    for (let i = 0; i < POLICY.maxPerAddress; i++) await fail(limiter, `v6-${i}`, `2001:db8:1:2::${(i + 1).toString(16)}`, 1)
    t.match(await limiter.attempt('v6-x', '2001:db8:1:2:ffff:ffff:ffff:ffff'), { status: 'locked', scope: 'address' })
    t.match(await limiter.attempt('v6-x', '2001:db8:1:3::1'), { status: 'admitted' }, 'the next /64 is another bucket')
  })

  t.test('an attempt refused by the username is not counted against the address', async (t) => {
    const { limiter } = await make()
    await fail(limiter, 'carol', '192.0.2.4', POLICY.maxPerUser + 10)
    t.match(await limiter.attempt('dave', '192.0.2.4'), { status: 'admitted', counted: { address: POLICY.maxPerUser } }, 'only the admitted attempts count for the address')
  })

  t.test('a success forgets that address’s failures for the user, and only those', async (t) => {
    const { limiter } = await make()
    await fail(limiter, 'erin', '192.0.2.5', 2)
    await fail(limiter, 'erin', '198.51.100.5', 2)
    await limiter.succeeded(admitted(t, await limiter.attempt('erin', '192.0.2.5'), 'the owner tries'))
    t.match(counted(await limiter.attempt('erin', '203.0.113.5')), { user: 2 }, "the attacker's two failures elsewhere still count")
    t.match(counted(await limiter.attempt('someone', '192.0.2.5')), { address: 2 }, 'the success itself is not counted against its address')
  })

  t.test('an attacker elsewhere cannot lock the owner out of an address they signed in from', async (t) => {
    const { limiter, clock } = await make()
    await limiter.succeeded(admitted(t, await limiter.attempt('frank', '192.0.2.6'), 'the owner signs in at home'))
    await fail(limiter, 'frank', '198.51.100.6', POLICY.maxPerUser)
    t.match(await limiter.attempt('frank', '198.51.100.6'), { status: 'locked', scope: 'user', lockedNow: true }, 'the attacker locks the account')
    t.match(await limiter.attempt('frank', '203.0.113.6'), { status: 'locked', scope: 'user' }, 'for every stranger')
    const home = admitted(t, await limiter.attempt('frank', '192.0.2.6'), 'but not for the known address: it has a budget of its own')
    await limiter.failed(home)
    // The known address's own budget is limited too (an attacker sharing it gets no more).
    await fail(limiter, 'frank', '192.0.2.6', POLICY.maxPerUser - 1)
    t.match(await limiter.attempt('frank', '192.0.2.6'), { status: 'locked', scope: 'user', lockedNow: true })
    clock.advanceSeconds(POLICY.lockoutMs / 1000)
    t.match(await limiter.attempt('frank', '192.0.2.6'), { status: 'admitted' }, 'and its lockout ends')
  })

  t.test('a known address is forgotten after knownAddressTtlMs', async (t) => {
    const { limiter, clock } = await make()
    await limiter.succeeded(admitted(t, await limiter.attempt('grace', '192.0.2.7'), 'signed in'))
    clock.advanceSeconds(POLICY.knownAddressTtlMs / 1000 + 1)
    await fail(limiter, 'grace', '198.51.100.7', POLICY.maxPerUser)
    t.match(await limiter.attempt('grace', '198.51.100.7'), { status: 'locked', lockedNow: true })
    t.match(await limiter.attempt('grace', '192.0.2.7'), { status: 'locked', scope: 'user' }, 'no longer exempt')
  })

  t.test('release gives an attempt back to both buckets', async (t) => {
    const { limiter } = await make()
    for (let i = 0; i < 3; i++) await limiter.release(admitted(t, await limiter.attempt('heidi', '192.0.2.8'), 'admitted'))
    t.match(await limiter.attempt('heidi', '192.0.2.8'), { status: 'admitted', counted: { user: 0, address: 0 } })
  })

  t.test('a parallel burst: max admitted, the rest busy (uncounted) until those are decided', async (t) => {
    const { limiter } = await make()
    const checks = await Promise.all(Array.from({ length: 12 }, () => limiter.attempt('ivan', '192.0.2.9')))
    const tickets = checks.flatMap((c) => (c.status === 'admitted' ? [c.ticket] : []))
    t.equal(tickets.length, POLICY.maxPerUser, 'max admitted')
    t.ok(checks.every((c) => c.status === 'admitted' || (c.status === 'busy' && c.scope === 'user')), 'the others are busy, none locked')
    for (const ticket of tickets) await limiter.failed(ticket)
    t.match(await limiter.attempt('ivan', '192.0.2.9'), { status: 'locked', lockedNow: true }, 'once all failed, the account locks')
  })

  t.test('parallel logins with the right password are queued, never locked', async (t) => {
    const { limiter } = await make()
    const first = await Promise.all(Array.from({ length: 8 }, () => limiter.attempt('judy', '192.0.2.10')))
    t.equal(first.filter((c) => c.status === 'busy').length, 8 - POLICY.maxPerUser)
    for (const c of first) if (c.status === 'admitted') await limiter.succeeded(c.ticket)
    const again = await Promise.all(Array.from({ length: 8 - POLICY.maxPerUser }, () => limiter.attempt('judy', '192.0.2.10')))
    t.ok(again.every((c) => c.status === 'admitted'), 'the queued ones get in once the first succeeded')
  })

  t.test('an attempt never decided counts as a failure after the pending lease', async (t) => {
    const { limiter, clock } = await make()
    for (let i = 0; i < POLICY.maxPerUser; i++) admitted(t, await limiter.attempt('kim', '192.0.2.11'), 'admitted, never decided')
    t.match(await limiter.attempt('kim', '192.0.2.11'), { status: 'busy' })
    clock.advanceSeconds(PENDING_LEASE_MS / 1000 + 1)
    t.match(await limiter.attempt('kim', '192.0.2.11'), { status: 'locked', lockedNow: true }, 'a crashed replica’s attempts end up counted')
  })
}
