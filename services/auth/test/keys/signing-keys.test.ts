import t from 'tap'
import { writeFileSync } from 'node:fs'
import { calculateJwkThumbprint } from 'jose'
import { generateRsaJwk, keySetFromJwks, loadKeySetFile, KeySetError } from '../../src/keys/signing-keys.js'

t.test('kid is the RFC 7638 thumbprint unless the file names one', async (t) => {
  const a = generateRsaJwk()
  const b = { ...generateRsaJwk(), kid: 'named-2026' }
  const snap = await keySetFromJwks({ keys: [a, b] })
  t.equal(snap.keys[0]!.kid, await calculateJwkThumbprint({ kty: 'RSA', n: a.n!, e: a.e! }))
  t.equal(snap.keys[1]!.kid, 'named-2026')
  t.equal(snap.active.kid, snap.keys[0]!.kid, 'first key is active by default')
  const chosen = await keySetFromJwks({ keys: [a, b], active: 'named-2026' })
  t.equal(chosen.active.kid, 'named-2026')
  t.equal(chosen.jwks.keys.length, 2, 'every key is published')
  t.notMatch(chosen.jwksBody, /"d"|"p"|"q"|"dp"|"dq"|"qi"/)
  t.not(snap.etag, (await keySetFromJwks({ keys: [a] })).etag)
})

t.test('bad key sets are refused with a reason', async (t) => {
  const a = generateRsaJwk()
  const pub = { kty: 'RSA', n: a.n, e: a.e }
  const cases: [unknown, RegExp][] = [
    [{}, /"keys" array/],
    [{ keys: [] }, /empty/],
    [{ keys: [pub] }, /not a private key/],
    [{ keys: [{ kty: 'EC', d: 'x' }] }, /kty must be RSA/],
    [{ keys: [{ ...a, alg: 'HS256' }] }, /alg must be RS256/],
    [{ keys: [a, a] }, /duplicate kid/],
    [{ keys: [a], active: 'nope' }, /not in the set/],
    [{ keys: [{ ...a, n: 'AQAB' }] }, /not a valid RSA private JWK|at least 2048 bits/],
    [{ keys: [{ kty: 'RSA', d: 'AAAA', n: 'x' }] }, /not a valid RSA private JWK/],
  ]
  for (const [doc, re] of cases) await t.rejects(keySetFromJwks(doc), re)
  const dir = t.testdir({ 'x.json': 'nope' })
  await t.rejects(loadKeySetFile(`${dir}/x.json`), KeySetError)
  writeFileSync(`${dir}/ok.json`, JSON.stringify({ keys: [a] }))
  t.equal((await loadKeySetFile(`${dir}/ok.json`)).keys.length, 1)
})
