/**
 * Pending logout confirmations cannot pile up in a browser (issue 12, finding 2's confirmation
 * page). Each GET /logout that asks the user sets a signed cookie of up to ~3.8 KB (it carries
 * the state and the redirect); a page that sends the browser to /logout again and again would
 * otherwise push its Cookie header past the server's 16 KiB header limit, and /logout would
 * answer 431 to that browser for the confirmation's lifetime (10 min): a user kept from signing out.
 */
import t from 'tap'
import { MAX_PENDING_LOGOUTS } from '../../services/auth/src/index.js'
import { parseLogoutForm } from '../../services/auth/test/oidc/harness.js'
import { browserLogin, FORM, form, startOidcApp } from './auth-fixture.js'

type Jar = Map<string, string>

/** What a browser keeps of the Set-Cookie headers: cleared cookies are removed. */
function store(jar: Jar, res: { cookies: { name: string; value: string; maxAge?: number; expires?: Date }[] }): void {
  for (const c of res.cookies) {
    const cleared = c.value === '' || c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now())
    if (cleared) jar.delete(c.name)
    else jar.set(c.name, c.value)
  }
}

const headerBytes = (jar: Jar): number => [...jar].map(([k, v]) => `${k}=${v}`).join('; ').length
const pending = (jar: Jar): string[] => [...jar.keys()].filter((k) => k.startsWith('gh_logout_'))

t.test('twenty confirmation pages leave a bounded Cookie header, and the newest ones still work', async (t) => {
  const h = await startOidcApp()
  t.teardown(h.close)
  const alice = await browserLogin(h)
  const jar: Jar = new Map(Object.entries(alice.session))
  const forms: { confirm: string; csrf: string }[] = []
  for (let i = 0; i < 20; i++) {
    // The largest state the endpoint takes, so each cookie is as large as it gets.
    const res = await h.app.inject({ method: 'GET', url: `/logout?state=${'s'.repeat(2040)}${String(i).padStart(8, '0')}`, cookies: Object.fromEntries(jar) })
    t.equal(res.statusCode, 200)
    forms.push(parseLogoutForm(res.body)!)
    store(jar, res)
  }
  t.ok(pending(jar).length <= MAX_PENDING_LOGOUTS, `${pending(jar).length} pending confirmation cookies held`)
  t.ok(headerBytes(jar) < 16 * 1024, `a Cookie header of ${headerBytes(jar)} bytes stays under the 16 KiB header limit`)

  // An early tab's form has expired (its cookie is gone); the latest tab's works.
  const stale = await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ ...forms[0]!, action: 'logout' }), cookies: Object.fromEntries(jar) })
  t.equal(stale.statusCode, 400)
  t.match(stale.body, /expired or is not valid/)
  const latest = await h.app.inject({ method: 'POST', url: '/logout', headers: FORM, payload: form({ ...forms[19]!, action: 'logout' }), cookies: Object.fromEntries(jar) })
  t.equal(latest.statusCode, 200)
  t.match(latest.body, /You have been signed out/)
})
