import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto'
import t, { type Test } from 'tap'
import { hash as argon2Hash } from '@node-rs/argon2'
import { hash as bcryptHash } from '@node-rs/bcrypt'
import { importKeycloakCredential, importPasswordHash, needsRehash, passwordHashProblem, verifyPasswordHash } from '../../src/directory/password-hashes.js'
import { hashPassword } from '../../src/directory/passwords.js'

/**
 * Each accepted format twice: hashes made here by another implementation (the bcrypt library,
 * node:crypto, @node-rs/argon2), and fixed vectors published by someone else, so the parsing is
 * checked against their implementation and not only against ours.
 */
const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '')
const ab64 = (b: Buffer): string => b64(b).replace(/\+/g, '.')

async function accepts(t: Test, hash: string, password: string, label: string): Promise<void> {
  t.equal(passwordHashProblem(hash), null, `${label}: accepted`)
  t.equal(await verifyPasswordHash(hash, password), true, `${label}: the right password`)
  t.equal(await verifyPasswordHash(hash, `${password}x`), false, `${label}: a wrong password`)
  t.equal(needsRehash(hash), true, `${label}: re-hashed at the next sign-in`)
}

t.test('bcrypt ($2a$, $2b$, $2y$)', async (t) => {
  const made = await bcryptHash('correct horse', { cost: 4 })
  for (const prefix of ['$2a$', '$2b$', '$2y$']) await accepts(t, prefix + made.slice(4), 'correct horse', prefix)
  // passlib's documentation (passlib.hash.bcrypt), password "password".
  await accepts(t, '$2b$12$GhvMmNVjRW29ulnudl.LbuAnUtN/LRfe1JsBm1Xu6LE3059z5Tr8m', 'password', 'passlib vector')
})

t.test('argon2i and argon2id (PHC)', async (t) => {
  const salt = randomBytes(16)
  await accepts(t, await argon2Hash('pw-argon2i', { algorithm: 1, memoryCost: 1024, timeCost: 2, parallelism: 1, salt }), 'pw-argon2i', 'argon2i made here')
  await accepts(t, await argon2Hash('pw-argon2id', { algorithm: 2, memoryCost: 1024, timeCost: 3, parallelism: 1, salt }), 'pw-argon2id', 'argon2id, other parameters')
  // The reference implementation's known-answer tests (phc-winner-argon2, src/test.c).
  await accepts(t, '$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8', 'password', 'argon2i KAT')
  await accepts(t, '$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc', 'password', 'argon2id KAT')
  t.equal(needsRehash(await hashPassword('ours')), false, 'our own argon2id is not re-hashed')
  t.equal(passwordHashProblem('$argon2d$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8') !== null, true, 'argon2d is not accepted')
})

t.test('PBKDF2: the PHC-like form and passlib\'s', async (t) => {
  const salt = randomBytes(16)
  for (const digest of ['sha256', 'sha512'] as const) {
    const dk = pbkdf2Sync('pw-pbkdf2', salt, 1000, digest === 'sha256' ? 32 : 64, digest)
    await accepts(t, `$pbkdf2-${digest}$i=1000,l=${dk.length}$${b64(salt)}$${b64(dk)}`, 'pw-pbkdf2', `PHC-like ${digest}`)
    await accepts(t, `$pbkdf2-${digest}$i=1000$${salt.toString('base64')}$${dk.toString('base64')}`, 'pw-pbkdf2', `PHC-like ${digest}, padded, no l`)
    await accepts(t, `$pbkdf2-${digest}$1000$${ab64(salt)}$${ab64(dk)}`, 'pw-pbkdf2', `passlib ${digest}`)
  }
  t.match(passwordHashProblem(`$pbkdf2-sha256$i=1000,l=31$${b64(salt)}$${b64(pbkdf2Sync('x', salt, 1000, 32, 'sha256'))}`), /l=/, 'l= must be the length')
  // passlib's test suite (passlib/tests/test_handlers.py, known_correct_hashes), password "password".
  await accepts(t, '$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ', 'password', 'passlib sha256 vector')
  await accepts(t, '$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww', 'password', 'passlib sha512 vector')
  await accepts(t, '$pbkdf2$1212$THDqatpidANpadlLeTeOEg$HV3oi1k5C5LQCgG1BMOL.BX4YZc', '\u0399\u03c9\u03b1\u03bd\u03bd\u03b7\u03c2', 'passlib sha1 vector')
})

t.test('scrypt', async (t) => {
  const salt = randomBytes(16)
  const dk = scryptSync('pw-scrypt', salt, 32, { N: 1024, r: 8, p: 1 })
  await accepts(t, `$scrypt$ln=10,r=8,p=1$${b64(salt)}$${b64(dk)}`, 'pw-scrypt', 'made here')
  // PowerDNS dnsdist's regression tests (webserver password "secret"): padded, parameters reordered.
  await accepts(t, '$scrypt$ln=10,p=1,r=8$6DKLnvUYEeXWh3JNOd3iwg==$kSrhdHaRbZ7R74q3lGBqO1xetgxRxhmWzYJ2Qvfm7JM=', 'secret', 'dnsdist vector')
  t.not(passwordHashProblem(`$scrypt$ln=10,r=8$${b64(salt)}$${b64(dk)}`), null, 'p is required')
  t.not(passwordHashProblem(`$scrypt$ln=10,r=8,p=1,p=1$${b64(salt)}$${b64(dk)}`), null, 'a parameter once')
})

t.test("Keycloak's credential: the representation and the raw export", async (t) => {
  // A Keycloak pbkdf2-sha256 credential (27,500 iterations, 512-bit value), password "RdaRfqP7Y89vy2".
  const rep = { algorithm: 'pbkdf2-sha256', hashIterations: 27500, salt: 'Td6XuopYK6JNfUnIlqYMOQ==', value: 'ZXVC08Hf4jBOoYzVoNWYjQijsMC2oc/OUa9LciiIJ/1XHPF/qPiY1DqwLLDN2hYFmf/1kApkveD8/Pr7GVqjgw==' }
  const fromRep = importPasswordHash(rep)
  if (!('hash' in fromRep)) throw new Error(fromRep.problem)
  t.match(fromRep.hash, /^\$pbkdf2-sha256\$i=27500,l=64\$/, 'stored as the PHC-like string')
  t.equal(await verifyPasswordHash(fromRep.hash, 'RdaRfqP7Y89vy2'), true)
  t.equal(await verifyPasswordHash(fromRep.hash, 'RdaRfqP7Y89vy3'), false)
  const raw = {
    type: 'password',
    secretData: JSON.stringify({ value: rep.value, salt: rep.salt, additionalParameters: {} }),
    credentialData: JSON.stringify({ hashIterations: 27500, algorithm: 'pbkdf2-sha256', additionalParameters: {} }),
  }
  t.same(importPasswordHash(raw), fromRep, 'the raw export form gives the same hash')
  t.same(importPasswordHash(JSON.stringify(rep)), fromRep, 'and so does the object as a JSON string')

  // Made here: pbkdf2 (HMAC-SHA1, Keycloak's "pbkdf2"), pbkdf2-sha512 and argon2.
  const salt = randomBytes(16)
  for (const [algorithm, digest, len] of [['pbkdf2', 'sha1', 64], ['pbkdf2-sha512', 'sha512', 64]] as const) {
    const value = pbkdf2Sync('kc-pw', salt, 1000, len, digest).toString('base64')
    const r = importKeycloakCredential({ algorithm, hashIterations: 1000, salt: salt.toString('base64'), value })
    if (!('hash' in r)) throw new Error(r.problem)
    t.equal(await verifyPasswordHash(r.hash, 'kc-pw'), true, algorithm)
  }
  const { hashRaw } = await import('@node-rs/argon2')
  const raw2 = await hashRaw('kc-argon', { algorithm: 2, memoryCost: 7168, timeCost: 5, parallelism: 1, salt })
  const argon = importKeycloakCredential({
    secretData: JSON.stringify({ value: raw2.toString('base64'), salt: salt.toString('base64') }),
    credentialData: JSON.stringify({ hashIterations: 5, algorithm: 'argon2', additionalParameters: { hashLength: ['32'], memory: ['7168'], type: ['id'], version: ['1.3'], parallelism: ['1'] } }),
  })
  if (!('hash' in argon)) throw new Error(argon.problem)
  t.equal(argon.hash.startsWith('$argon2id$v=19$m=7168,t=5,p=1$'), true)
  t.equal(await verifyPasswordHash(argon.hash, 'kc-argon'), true, "Keycloak's argon2")
  t.match(importPasswordHash({ algorithm: 'md5', hashIterations: 1, salt: 'AA==', value: 'AA==' }), { problem: /algorithm/ })
  t.match(importPasswordHash({ algorithm: 'pbkdf2-sha256', salt: 'AA==', value: 'AA==' }), { problem: /hashIterations/ })
})

t.test('DoS defence: a hash asking for absurd work is refused at import and never run', async (t) => {
  const salt = b64(randomBytes(16))
  const out = b64(randomBytes(32))
  const absurd = [
    `$pbkdf2-sha256$i=100000000,l=32$${salt}$${out}`,
    `$pbkdf2-sha256$100000000$${salt}$${out}`,
    `$pbkdf2-sha256$i=1500000,l=128$${salt}$${b64(randomBytes(128))}`, // 4 blocks of 1.5M
    `$scrypt$ln=30,r=8,p=1$${salt}$${out}`,
    `$scrypt$ln=18,r=32,p=1$${salt}$${out}`, // 1 GiB
    `$scrypt$ln=14,r=8,p=4096$${salt}$${out}`,
    `$argon2id$v=19$m=4194304,t=2,p=1$${salt}$${out}`, // 4 GiB
    `$argon2id$v=19$m=19456,t=1000,p=1$${salt}$${out}`,
    '$2b$31$GhvMmNVjRW29ulnudl.LbuAnUtN/LRfe1JsBm1Xu6LE3059z5Tr8m',
    '$2b$15$GhvMmNVjRW29ulnudl.LbuAnUtN/LRfe1JsBm1Xu6LE3059z5Tr8m',
  ]
  for (const h of absurd) {
    t.not(passwordHashProblem(h), null, `refused: ${h.slice(0, 30)}`)
    t.match(importPasswordHash(h), { problem: String }, 'at import')
    const started = process.hrtime.bigint()
    t.equal(await verifyPasswordHash(h, 'anything'), false, 'verifies false')
    // Had it run, each would take seconds (or fail for memory); refused, it takes no KDF at all.
    t.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'without running the KDF')
  }
  t.match(importPasswordHash({ algorithm: 'pbkdf2-sha512', hashIterations: 50_000_000, salt: 'AAAAAAAAAAAAAAAAAAAAAA==', value: out }), { problem: /out of bounds/ }, 'a Keycloak credential too')
})

t.test('unknown and malformed hashes verify false and never throw', async (t) => {
  for (const h of ['', 'plain', '$1$abc$def', '$5$rounds=5000$x$y', '$argon2id$garbage', '$2b$10$short', '$pbkdf2-sha256$i=x$a$b', '$pbkdf2-sha256$i=1000$!!$!!', '$scrypt$ln=a$b$c', '$pbkdf2-md5$1000$AA$AA', 'x'.repeat(5000)]) {
    t.equal(await verifyPasswordHash(h, 'pw'), false, JSON.stringify(h.slice(0, 20)))
    t.not(passwordHashProblem(h), null)
    t.equal(needsRehash(h), true)
  }
  t.equal(await verifyPasswordHash(undefined as unknown as string, 'pw'), false)
  t.match(importPasswordHash(42), { problem: String })
  t.match(importPasswordHash('{not json'), { problem: /JSON/ })
})

t.test('a problem never quotes the hash', async (t) => {
  const secretish = '$pbkdf2-sha256$i=100000000,l=32$c2VjcmV0c2FsdA$SECRETSECRETSECRETSECRET'
  const r = importPasswordHash(secretish)
  t.ok('problem' in r)
  t.notMatch((r as { problem: string }).problem, /SECRET|c2VjcmV0/)
})
