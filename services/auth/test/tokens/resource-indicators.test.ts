/**
 * The resource-indicator rules (RFC 8707) on their own, with awkward values on purpose; the flows
 * through every grant are in test/oidc/resource-indicators*.test.ts and test/security.
 */
import t from 'tap'
import { InvalidTarget } from '@gatehouse/service-kit'
import {
  allowedResources, authorizedResources, grantedResources, requestedResource, resourceUriProblem, scopeForAudience, tokenAudience,
} from '../../src/tokens/resource-indicators.js'

const multi = { audience: 'api://a', resources: ['api://b', 'api://a'] }
const single = { audience: 'api://a', resources: [] }
const catalog = [
  { audience: 'api://a', scopes: ['a:read', 'shared'] },
  { audience: 'api://b', scopes: ['b:read', 'shared'] },
  { audience: 'api://b', scopes: ['b:write'] },
]

t.test('resourceUriProblem: absolute URIs without a fragment, visible ASCII only (RFC 8707 §2)', async (t) => {
  for (const ok of ['api://a', 'https://api.example.com/v1', 'https://api.example.com/v1?tenant=x', 'urn:example:api', 'a:b', `api://${'x'.repeat(2042)}`]) {
    t.equal(resourceUriProblem(ok), null, ok.slice(0, 40))
  }
  const bad: [string, RegExp][] = [
    ['', /absolute URI/], ['api', /absolute URI/], ['/api', /absolute URI/], ['//host/api', /absolute URI/], ['1api://a', /absolute URI/],
    [' api://a', /absolute URI/], ['api://a\n', /absolute URI/], ['api://a\t', /absolute URI/], ['api://ä', /absolute URI/], ['http://[::1', /absolute URI/],
    ['api://a#', /fragment/], ['api://a#x', /fragment/], ['https://h/p?q#f', /fragment/], [`api://${'x'.repeat(2043)}`, /longer than 2048/],
  ]
  for (const [uri, re] of bad) t.match(resourceUriProblem(uri), re, JSON.stringify(uri.slice(0, 40)))
})

t.test('allowed, authorized and requested resources', async (t) => {
  t.same(allowedResources(multi), ['api://a', 'api://b'], 'the default first, each once')
  t.same(allowedResources(single), ['api://a'])
  t.same(authorizedResources([], multi), ['api://a'], 'none asked: the default')
  t.same(authorizedResources(['api://b', 'api://b'], multi), ['api://b'])
  t.same(authorizedResources(['api://b', 'api://a'], multi), ['api://b', 'api://a'])
  for (const asked of [['api://c'], ['api://b', 'api://c'], ['API://b'], ['api://b/'], ['api://b#']]) {
    t.throws(() => authorizedResources(asked, multi), InvalidTarget, JSON.stringify(asked))
  }
  t.throws(() => authorizedResources(['api://b'], single), InvalidTarget, 'not allowed to a client without resources')

  t.equal(requestedResource([], multi), undefined)
  t.equal(requestedResource(['api://b', 'api://b'], multi), 'api://b', 'the same value twice is one resource')
  t.throws(() => requestedResource(['api://a', 'api://b'], multi), { code: 'invalid_target', description: 'one resource per access token' })
  t.throws(() => requestedResource(['api://c'], multi), { code: 'invalid_target' })
  t.throws(() => requestedResource(['api://a#x'], multi), { code: 'invalid_target' })
})

t.test('what a grant covers, and the audience picked from it', async (t) => {
  t.same(grantedResources(undefined, multi), ['api://a'], 'an older grant: the audience')
  t.same(grantedResources(['api://b', 'api://gone'], multi), ['api://b'], 'what the client lost is dropped')
  t.same(grantedResources(['api://old'], single), ['api://a'], 'a client without resources follows its audience, as before')
  t.equal(tokenAudience(undefined, ['api://b', 'api://a'], multi), 'api://a', 'the default when granted')
  t.equal(tokenAudience(undefined, ['api://b'], multi), 'api://b', 'else the first granted')
  t.equal(tokenAudience(undefined, [], multi), undefined)
  t.equal(tokenAudience('api://b', ['api://a', 'api://b'], multi), 'api://b')
  t.throws(() => tokenAudience('api://b', ['api://a'], multi), { code: 'invalid_target', description: 'the resource was not granted' })
})

t.test('scopeForAudience: its own scopes and those no resource owns; a client without resources keeps all', async (t) => {
  const granted = 'openid a:read b:read b:write shared email'
  t.equal(scopeForAudience(granted, 'api://a', multi, catalog), 'openid a:read shared email')
  t.equal(scopeForAudience(granted, 'api://b', multi, catalog), 'openid b:read b:write shared email', 'every catalog entry of the audience')
  t.equal(scopeForAudience(granted, 'api://unconfigured', multi, catalog), 'openid email', 'an audience no resource describes: only unowned scopes')
  t.equal(scopeForAudience('a:read', 'api://b', multi, catalog), '', 'nothing of its own: an empty scope')
  t.equal(scopeForAudience(granted, 'api://a', single, catalog), granted, 'as before resource indicators')
  t.equal(scopeForAudience(granted, 'api://a', multi, []), granted, 'no catalog: nothing is owned')
})
