/**
 * Recovery codes (mfa/recovery-codes.ts): ten codes of ten characters (50 bits each) from an
 * unambiguous alphabet, shown as xxxxx-xxxxx; kept as the SHA-256 of the normalised code, and
 * the same normalisation when one is typed.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { RECOVERY_CODE_COUNT, newRecoveryCodes, normaliseRecoveryCode, recoveryCodeHash } from '../../src/mfa/recovery-codes.js'

t.test('a set: ten codes xxxxx-xxxxx, no ambiguous letters, each digest the SHA-256 of its normal form', async (t) => {
  const { codes, hashes } = newRecoveryCodes()
  t.equal(codes.length, RECOVERY_CODE_COUNT)
  t.equal(hashes.length, RECOVERY_CODE_COUNT)
  for (const [i, code] of codes.entries()) {
    t.match(code, /^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/)
    t.equal(hashes[i], createHash('sha256').update(code.replace('-', '')).digest('base64url'))
  }
  t.equal(new Set(codes).size, codes.length)
})

t.test('50 bits a code: every one of the 32 symbols appears, in every position, over many codes', async (t) => {
  const { codes } = newRecoveryCodes(2000)
  const perPosition = Array.from({ length: 10 }, () => new Set<string>())
  for (const c of codes) [...c.replace('-', '')].forEach((ch, i) => perPosition[i]!.add(ch))
  t.same(perPosition.map((s) => s.size), Array(10).fill(32))
  t.ok(Math.log2(32) * 10 >= 50)
})

t.test('what the user types: case, dashes and spaces ignored; o, i, l read as 0, 1, 1; anything else refused', async (t) => {
  const { codes, hashes } = newRecoveryCodes(1)
  const code = codes[0]!
  for (const typed of [code, code.toUpperCase(), code.replace('-', ''), ` ${code.slice(0, 3)} ${code.slice(3)} `, code.replace('-', '--')]) {
    t.equal(recoveryCodeHash(typed), hashes[0], JSON.stringify(typed))
  }
  t.equal(normaliseRecoveryCode('O1IL0-abcde'), '01110abcde')
  for (const bad of ['', 'abcde', 'abcde-abcd', 'abcde-abcdef', 'abcde-abcdu', 'abcde_abcde', 'abcde-abcd!', 'ａbcde-abcde', 'x'.repeat(65)]) {
    t.equal(recoveryCodeHash(bad), null, JSON.stringify(bad))
  }
})
