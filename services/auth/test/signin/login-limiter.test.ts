import t from 'tap'
import { addressBucket, MemoryLoginLimiter } from '../../src/signin/login-limiter.js'
import { loginLimiterContract, POLICY } from './login-limiter-contract.js'
import { ManualClock } from '@gatehouse/test-harness'

loginLimiterContract(t, async () => {
  const clock = new ManualClock()
  return { clock, limiter: new MemoryLoginLimiter({ policy: POLICY, clock: clock.now }) }
})

t.test('address buckets', async (t) => {
  t.equal(addressBucket('192.0.2.1'), '192.0.2.1')
  t.equal(addressBucket('::ffff:192.0.2.1'), '192.0.2.1', 'IPv4-mapped IPv6 is the IPv4 address')
  t.equal(addressBucket('2001:db8:0:1::1'), '2001:db8:0:1::/64')
  t.equal(addressBucket('2001:0db8:0000:0001:ffff:ffff:ffff:ffff'), '2001:db8:0:1::/64')
  t.equal(addressBucket('2001:db8::1'), '2001:db8:0:0::/64')
  t.equal(addressBucket('::1'), '0:0:0:0::/64')
  t.equal(addressBucket('fe80::1%eth0'), 'fe80:0:0:0::/64')
})

t.test('policy values are checked', async (t) => {
  t.throws(() => new MemoryLoginLimiter({ policy: { ...POLICY, maxPerUser: 0 } }), /maxPerUser/)
  t.throws(() => new MemoryLoginLimiter({ policy: { ...POLICY, windowMs: 1.5 } }), /windowMs/)
})

t.test('memory stays bounded by live buckets', async (t) => {
  const clock = new ManualClock()
  const limiter = new MemoryLoginLimiter({ policy: POLICY, clock: clock.now })
  for (let i = 0; i < 12_000; i++) {
    const c = await limiter.attempt(`spray-${i}`, `10.0.${i >> 8}.${i & 255}`)
    if (c.status === 'admitted') await limiter.failed(c.ticket)
  }
  clock.advanceSeconds(POLICY.windowMs / 1000 + 1)
  t.ok(limiter.size >= 12_000, `${limiter.size} live buckets`)
  await limiter.attempt('one-more', '10.9.9.9')
  t.ok(limiter.size <= 2, `swept to ${limiter.size} once the window passed`)
  t.match(await limiter.attempt('spray-1', '10.0.0.1'), { status: 'admitted', counted: { user: 0, address: 0 } }, 'old attempts are gone')
})
