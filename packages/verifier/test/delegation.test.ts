import Fastify from 'fastify'
import t from 'tap'
import { compileRequirement, gatehouseAuth, MAX_ACTOR_CHAIN, type AuthContext } from '../src/index.js'
import { toAuthContext } from '../src/auth-context.js'
import { AUDIENCE, makeKey, ManualClock, startFakeIssuer, token } from '@gatehouse/test-harness'

/**
 * Delegated tokens (RFC 8693 §4.1 `act`, issued by token exchange): the chain on `request.auth`,
 * and the route rule `delegation: 'required' | 'forbidden'`.
 */

const base = { sub: 'u_1', client_id: 'gateway', exp: 2_000_000_000, scope: 'reports:read', sid: 'fam' }

t.test('actors: the act chain flattened, the current actor first', async (t) => {
  t.same(toAuthContext(base).actors, [], 'not delegated')
  t.same(toAuthContext({ ...base, act: { sub: 'gateway' } }).actors, ['gateway'])
  t.same(toAuthContext({ ...base, act: { sub: 'c', act: { sub: 'b', act: { sub: 'a' } } } }).actors, ['c', 'b', 'a'])
  t.ok(Object.isFrozen(toAuthContext({ ...base, act: { sub: 'a' } }).actors))
  let deep: Record<string, unknown> = { sub: 'a0' }
  for (let i = 1; i < MAX_ACTOR_CHAIN; i++) deep = { sub: `a${i}`, act: deep }
  t.equal(toAuthContext({ ...base, act: deep }).actors.length, MAX_ACTOR_CHAIN, 'the longest chain allowed')
  for (const [what, act] of [
    ['a string', 'gateway'],
    ['an array', [{ sub: 'a' }]],
    ['null', null],
    ['no sub', {}],
    ['an empty sub', { sub: '' }],
    ['a number sub', { sub: 7 }],
    ['a malformed inner actor', { sub: 'b', act: { sub: 1 } }],
    ['an inner null', { sub: 'b', act: null }],
    ['a chain too long', { sub: 'x', act: deep }],
  ] as const) {
    t.throws(() => toAuthContext({ ...base, act }), { code: 'invalid_token' }, what)
  }
})

t.test('delegation: required or forbidden', async (t) => {
  const delegated = toAuthContext({ ...base, act: { sub: 'gateway' } })
  const direct = toAuthContext(base)
  const required = compileRequirement({ delegation: 'required' })
  const forbidden = compileRequirement({ delegation: 'forbidden' })
  t.equal(required(delegated), undefined)
  t.match(required(direct), { code: 'access_denied', statusCode: 403, description: 'this resource requires a delegated token' })
  t.equal(forbidden(direct), undefined)
  t.match(forbidden(delegated), { code: 'access_denied', statusCode: 403, description: 'this resource does not accept a delegated token' })
  t.equal(compileRequirement({})(delegated), undefined, 'no rule: either')
  t.throws(() => compileRequirement({ delegation: 'sometimes' as 'required' }), TypeError)
})

t.test('through the plugin: request.auth.actors and the route rule', async (t) => {
  const key = await makeKey('key-1')
  const issuer = await startFakeIssuer({ keys: [key] })
  t.teardown(() => issuer.close())
  const clock = new ManualClock(Date.now())
  const app = Fastify({ logger: false })
  await app.register(gatehouseAuth, { issuer: issuer.issuer, audience: AUDIENCE, clock: clock.now })
  app.get('/on-behalf', { config: { auth: { kind: 'user', delegation: 'required' } } }, async (request) => ({ sub: request.auth.subject, actors: request.auth.actors }))
  app.get('/direct', { config: { auth: { delegation: 'forbidden' } } }, async (request) => ({ actors: (request.auth as AuthContext).actors }))
  t.teardown(() => app.close())
  await app.ready()
  const sign = (claims: Record<string, unknown>) => token({ key, issuer: issuer.issuer, now: clock.seconds(), claims })
  const chained = sign({ act: { sub: 'gateway', act: { sub: 'frontend' } } })
  const own = sign({})

  const ok = await app.inject({ method: 'GET', url: '/on-behalf', headers: { authorization: `Bearer ${chained}` } })
  t.equal(ok.statusCode, 200)
  t.same(ok.json().actors, ['gateway', 'frontend'])
  const notDelegated = await app.inject({ method: 'GET', url: '/on-behalf', headers: { authorization: `Bearer ${own}` } })
  t.equal(notDelegated.statusCode, 403)
  t.equal(notDelegated.json().error, 'access_denied')
  t.equal((await app.inject({ method: 'GET', url: '/direct', headers: { authorization: `Bearer ${own}` } })).json().actors.length, 0)
  t.equal((await app.inject({ method: 'GET', url: '/direct', headers: { authorization: `Bearer ${chained}` } })).statusCode, 403)
  const bad = await app.inject({ method: 'GET', url: '/direct', headers: { authorization: `Bearer ${sign({ act: 'gateway' })}` } })
  t.equal(bad.statusCode, 401, 'a malformed act is an invalid token')
  t.match(bad.headers['www-authenticate'], /error="invalid_token"/)
})
