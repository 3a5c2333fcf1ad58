/**
 * Second-factor attempts in the login limiter (signin/second-step.ts secondFactorBucket), in
 * memory and in a private Redis: the user's second-factor bucket is its own (locking it locks
 * neither the user's password bucket nor another user's), it cannot be named by any username,
 * and its Redis keys name no user.
 */
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { ManualClock } from '@gatehouse/test-harness'
import { privateRedis } from '../helpers.js'
import { MemoryLoginLimiter, type LoginLimiter } from '../../src/signin/login-limiter.js'
import { RedisLoginLimiter } from '../../src/signin/redis-login-limiter.js'
import { secondFactorBucket } from '../../src/signin/second-step.js'
import { usernameProblem } from '../../src/directory/users.js'
import { POLICY } from '../signin/login-limiter-contract.js'

const { redis, admin } = await privateRedis(t)

async function fail(limiter: LoginLimiter, name: string, address: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await limiter.attempt(name, address)
    if (c.status === 'admitted') await limiter.failed(c.ticket)
  }
}

function rules(t: Test, make: () => LoginLimiter): void {
  t.test('a user\'s second-factor lockout is its own', async (t) => {
    const limiter = make()
    const userId = 'u_Alice'
    await fail(limiter, secondFactorBucket(userId), '192.0.2.1', POLICY.maxPerUser)
    t.match(await limiter.attempt(secondFactorBucket(userId), '198.51.100.1'), { status: 'locked', scope: 'user' }, 'locked from any address')
    t.match(await limiter.attempt('u_Alice', '198.51.100.2'), { status: 'admitted' }, 'a username equal to the id is another bucket')
    t.match(await limiter.attempt('alice', '198.51.100.3'), { status: 'admitted' }, 'the password bucket is untouched')
    t.match(await limiter.attempt(secondFactorBucket('u_alice'), '198.51.100.4'), { status: 'admitted' }, 'ids differing in case are not folded together')
  })
}

t.test('memory', async (t) => rules(t, () => new MemoryLoginLimiter({ policy: POLICY, clock: new ManualClock().now })))

t.test('redis', async (t) => {
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`
  rules(t, () => new RedisLoginLimiter({ redis, policy: POLICY, clock: new ManualClock().now, keyPrefix }))
  t.test('its keys name no user and expire', async (t) => {
    const prefix = `t${randomBytes(4).toString('hex')}:`
    const limiter = new RedisLoginLimiter({ redis, policy: POLICY, clock: new ManualClock().now, keyPrefix: prefix })
    await fail(limiter, secondFactorBucket('u_secret_id'), '192.0.2.9', 2)
    const keys = (await admin.call('KEYS', `${prefix}*`)) as string[]
    t.ok(keys.length >= 2)
    for (const k of keys) {
      t.notMatch(k, /secret|mfa|\0/i, `${k} is opaque`)
      t.ok(Number(await admin.call('PTTL', k)) > 0, `${k} expires`)
    }
  })
})

t.test('no username can name a second-factor bucket', async (t) => {
  t.not(usernameProblem(secondFactorBucket('u_alice')), null)
})
