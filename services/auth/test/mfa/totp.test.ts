/**
 * TOTP (mfa/totp.ts): the RFC 6238 test vector (SHA-1), the otpauth:// URI an app scans, the ±1
 * step window returning the matched step, and codes refused by their shape without an HMAC.
 */
import t from 'tap'
import { Secret, TOTP, URI } from 'otpauth'
import { TOTP_SECRET_BYTES, groupedSecret, newTotpSecret, normaliseTotpCode, totpCode, totpIssuer, totpQrSvg, totpStep, totpUri, verifyTotp } from '../../src/mfa/totp.js'

// RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890"; 8-digit codes there, the last 6 here.
const RFC_SECRET = Secret.fromLatin1('12345678901234567890').base32

t.test('the RFC 6238 test vectors (SHA-1, last six digits)', async (t) => {
  for (const [seconds, code] of [[59, '287082'], [1111111109, '081804'], [1111111111, '050471'], [1234567890, '005924'], [2000000000, '279037']] as const) {
    t.equal(totpCode(RFC_SECRET, seconds * 1000), code, `T=${seconds}`)
    t.equal(verifyTotp(RFC_SECRET, code, seconds * 1000), Math.floor(seconds / 30), `verified at T=${seconds}, its step returned`)
  }
})

t.test('a new secret: 20 random bytes, base32, never the same twice', async (t) => {
  const a = newTotpSecret()
  const b = newTotpSecret()
  t.not(a, b)
  t.match(a, /^[A-Z2-7]{32}$/)
  t.equal(Secret.fromBase32(a).bytes.length, TOTP_SECRET_BYTES)
  t.equal(groupedSecret('ABCDEFGHIJ'), 'ABCD EFGH IJ')
})

t.test('the otpauth:// URI: issuer "Gatehouse (host)", label the username, SHA1, 6 digits, 30 s', async (t) => {
  const secret = newTotpSecret()
  const uri = totpUri(secret, 'https://auth.example.com/tenant', 'alice@example.com')
  t.match(uri, /^otpauth:\/\/totp\//)
  const parsed = URI.parse(uri)
  t.ok(parsed instanceof TOTP)
  const totp = parsed as TOTP
  t.equal(totp.issuer, 'Gatehouse (auth.example.com)')
  t.equal(totp.label, 'alice@example.com')
  t.equal(totp.algorithm, 'SHA1')
  t.equal(totp.digits, 6)
  t.equal(totp.period, 30)
  t.equal(totp.secret.base32, secret)
  t.equal(totpIssuer('http://[::1]:4000'), 'Gatehouse', 'no colon in the issuer (it separates issuer and account)')
  t.equal(totpIssuer('http://127.0.0.1:4000'), 'Gatehouse (127.0.0.1)')
})

t.test('the QR code is an inline SVG of paths only (nothing the CSP would block)', async (t) => {
  const svg = await totpQrSvg(totpUri(newTotpSecret(), 'https://auth.example.com', 'alice'))
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
  t.notMatch(svg, /<(script|image|style|foreignObject)|style=|href=/i)
})

t.test('the window: one step either side, the matched step returned; two steps away refused', async (t) => {
  const secret = newTotpSecret()
  const now = 1_800_000_000_000 + 12_345
  const step = totpStep(now)
  t.equal(verifyTotp(secret, totpCode(secret, now), now), step)
  t.equal(verifyTotp(secret, totpCode(secret, now - 30_000), now), step - 1, 'the previous step')
  t.equal(verifyTotp(secret, totpCode(secret, now + 30_000), now), step + 1, 'the next step')
  const farBack = totpCode(secret, now - 60_000)
  const farAhead = totpCode(secret, now + 60_000)
  const near = new Set([-1, 0, 1].map((d) => totpCode(secret, now + d * 30_000)))
  if (!near.has(farBack)) t.equal(verifyTotp(secret, farBack, now), null, 'two steps back')
  if (!near.has(farAhead)) t.equal(verifyTotp(secret, farAhead, now), null, 'two steps ahead')
  t.equal(verifyTotp(newTotpSecret(), totpCode(secret, now), now) === step, false, 'another secret')
})

t.test('the shape: exactly six digits once spaces are gone; anything else refused without work', async (t) => {
  const secret = newTotpSecret()
  const now = 1_800_000_000_000
  const code = totpCode(secret, now)
  t.equal(verifyTotp(secret, `${code.slice(0, 3)} ${code.slice(3)}`, now), totpStep(now), 'spaces allowed')
  t.equal(verifyTotp(secret, ` ${code}\t`, now), totpStep(now))
  t.equal(normaliseTotpCode(' 123 456 '), '123456')
  for (const bad of ['', '12345', '1234567', '12345a', '１２３４５６', '123-456', '0x1234', '+12345', `${code}0`, '١٢٣٤٥٦']) {
    t.equal(normaliseTotpCode(bad), null, JSON.stringify(bad))
    t.equal(verifyTotp(secret, bad, now), null, JSON.stringify(bad))
  }
})
