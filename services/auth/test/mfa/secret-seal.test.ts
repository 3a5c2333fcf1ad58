/**
 * Sealed TOTP secrets (mfa/secret-seal.ts): AES-256-GCM under a key derived from COOKIE_SECRET;
 * the first secret seals, every one opens (rotation); bound to its context; tampering refused.
 */
import t from 'tap'
import { openSecret, sealSecret } from '../../src/mfa/secret-seal.js'

const OLD = 'old-cookie-secret-0123456789abcdefghij'
const NEW = 'new-cookie-secret-0123456789abcdefghij'
const PLAIN = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'

t.test('seal and open; a fresh IV every time; the secret is not in the sealed text', async (t) => {
  const a = sealSecret([NEW], PLAIN, 'u_alice')
  const b = sealSecret([NEW], PLAIN, 'u_alice')
  t.not(a, b)
  t.match(a, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/)
  t.notOk(a.includes(PLAIN))
  t.equal(openSecret([NEW], a, 'u_alice'), PLAIN)
})

t.test('rotation: sealed under the old secret, opened while it stays in the list; gone from the list, not', async (t) => {
  const sealed = sealSecret([OLD], PLAIN, 'u_alice')
  t.equal(openSecret([NEW, OLD], sealed, 'u_alice'), PLAIN, 'the old value kept second')
  t.equal(openSecret([NEW], sealed, 'u_alice'), null, 'the old value dropped: unreadable')
  t.match(sealSecret([NEW, OLD], PLAIN, 'u_alice').split('.')[1], sealSecret([NEW], PLAIN, 'x').split('.')[1], 'the first seals')
})

t.test('another context (another user), tampering, other versions and garbage are refused', async (t) => {
  const sealed = sealSecret([NEW], PLAIN, 'u_alice')
  t.equal(openSecret([NEW], sealed, 'u_bob'), null, 'moved to another user')
  const parts = sealed.split('.')
  const flip = (s: string): string => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
  for (const i of [1, 2, 3, 4]) {
    const changed = [...parts]
    changed[i] = flip(changed[i]!)
    t.equal(openSecret([NEW], changed.join('.'), 'u_alice'), null, `part ${i} changed`)
  }
  for (const bad of ['', 'v1', `v2.${parts.slice(1).join('.')}`, `${sealed}.x`, 'v1.a.b.c.d', 'v1.!.!.!.!', parts.slice(0, 4).join('.')]) {
    t.equal(openSecret([NEW], bad, 'u_alice'), null, JSON.stringify(bad.slice(0, 20)))
  }
  t.throws(() => sealSecret([], PLAIN, 'u'), TypeError)
})
