import t from 'tap'
import { assertB64Token, extractBearerToken } from '../src/index.js'

t.test('extractBearerToken', async (t) => {
  t.equal(extractBearerToken(undefined), null)
  t.equal(extractBearerToken(''), null)
  t.equal(extractBearerToken('Basic abc'), null, 'another scheme is no bearer token')
  t.equal(extractBearerToken('Bearerabc'), null)
  t.equal(extractBearerToken('Bearer abc'), 'abc')
  t.equal(extractBearerToken('BEARER abc'), 'abc', 'case-insensitive scheme (RFC 7235 §2.1)')
  t.throws(() => extractBearerToken('Bearer'), { code: 'invalid_request' })
  t.throws(() => extractBearerToken('Bearer '), { code: 'invalid_request' })
})

t.test('assertB64Token follows RFC 6750 §2.1', async (t) => {
  for (const ok of ['abc', 'a.b.c', 'a-b_c~d+e/f', 'abc==']) t.doesNotThrow(() => assertB64Token(ok), ok)
  for (const bad of ['a b', 'a=b', '=', 'a"b', 'a,b', ' abc', 'é']) t.throws(() => assertB64Token(bad), { code: 'invalid_request' }, bad)
})
