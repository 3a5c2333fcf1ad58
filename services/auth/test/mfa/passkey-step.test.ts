/**
 * The pieces of the passkey second step (mfa/passkeys.ts offerPasskeyStep, passkeyStepSection,
 * checkSecondStepPasskey) as the second-step page will use them, on a small app of their own:
 * the section's markup and cookie, the ceremony bound to the step it was shown for, only the
 * user's own passkeys, and the amr of password + passkey.
 */
import t from 'tap'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import { CookieJar, injectFetch } from '@gatehouse/test-harness'
import { html } from '../../src/http/html.js'
import { singleParams } from '../../src/http/form.js'
import type { User } from '../../src/directory/users.js'
import { checkSecondStepPasskey, enrolPasskey, offerPasskeyStep, passkeyStepSection, registrationOptions, relyingParty } from '../../src/mfa/passkeys.js'
import { startOidcApp } from '../oidc/harness.js'
import { SoftwareAuthenticator } from './software-authenticator.js'

const ISSUER = 'http://localhost:4000'

t.test('the second step with a passkey', async (t) => {
  const h = await startOidcApp({ env: { ISSUER } })
  t.teardown(h.close)
  const deps = h.deps
  const rp = relyingParty(deps.config)!
  const alice = (await deps.users.findByUsername('alice')) as User
  const bob = (await deps.users.findByUsername('bob')) as User
  const enrol = async (user: User): Promise<SoftwareAuthenticator> => {
    const auth = new SoftwareAuthenticator(ISSUER, 'localhost')
    const bytes = new Uint8Array(32).fill(user === alice ? 1 : 2)
    const options = JSON.parse(await registrationOptions(rp, user, [], bytes)) as { challenge: string; user: { id: string } }
    const r = await enrolPasskey(deps, rp, user, auth.register(options), { challenge: options.challenge, exp: deps.clock() + 60_000 }, 'k')
    if (!r.ok) throw new Error(r.reason)
    return auth
  }

  // What the second-step helper's page and route will do, in miniature.
  const app = Fastify()
  await app.register(cookie, { secret: [...deps.config.cookieSecrets] })
  await app.register(formbody)
  app.get('/login/second-factor', async (request, reply) => {
    const { user, step } = request.query as { user: string; step: string }
    const offer = await offerPasskeyStep(reply, deps, user, step)
    return reply.type('text/html').send(passkeyStepSection(offer, html`<input type="hidden" name="step" value="${step}">`).html)
  })
  app.post('/login/second-factor/passkey', async (request) => {
    const params = singleParams(request.body)
    return await checkSecondStepPasskey(request, deps, params, params.user!, params.step!)
  })
  await app.ready()
  t.teardown(() => app.close())
  const send = injectFetch(app)
  const jar = new CookieJar()
  const get = async (query: Record<string, string>) => {
    const res = await send(new URL(`/login/second-factor?${new URLSearchParams(query)}`, ISSUER), { headers: { cookie: jar.header() } })
    jar.store(res)
    return { res, body: await res.text() }
  }
  const post = async (fields: Record<string, string>) => {
    const res = await send(new URL('/login/second-factor/passkey', ISSUER), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() }, body: new URLSearchParams(fields).toString() })
    return (await res.json()) as { ok: boolean; amr?: string[]; reason?: string }
  }
  const field = (body: string, name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(body)![1]!
  const options = (body: string) => JSON.parse(/data-options="([^"]*)"/.exec(body)![1]!.replace(/&quot;/g, '"')) as { challenge: string; allowCredentials: { id: string }[] }

  t.equal((await get({ user: alice.id, step: 'step-0' })).body, '', 'no passkey yet: no section')
  const auth = await enrol(alice)
  const bobs = await enrol(bob)

  const { res, body } = await get({ user: alice.id, step: 'step-1' })
  t.match(body, /^<section id="passkey-step" aria-labelledby="passkey-step-heading">/)
  t.match(body, /action="\/login\/second-factor\/passkey"/)
  t.match(res.headers.get('set-cookie') ?? '', /^gh_pk_step_[\w-]{16}=[^;]+; Max-Age=300; Path=\/login\/second-factor\/passkey; HttpOnly; SameSite=Lax/)
  t.same(options(body).allowCredentials.map((c) => c.id), [auth.id], 'only alice\'s passkeys are allowed')
  const fields = { user: alice.id, step: 'step-1', ceremony: field(body, 'ceremony'), ceremony_csrf: field(body, 'ceremony_csrf') }

  t.same(await post({ ...fields, step: 'step-2', credential: auth.assert(options(body)) }), { ok: false, reason: 'wrong' }, 'a ceremony shown for another step')
  t.match(await post({ ...fields, credential: bobs.assert(options(body)) }), { ok: false, reason: 'unknown' }, 'bob\'s passkey for alice\'s step')
  t.match(await post({ ...fields, credential: auth.assert(options(body)) }), { ok: true, amr: ['pwd', 'hwk', 'user', 'mfa'] })
  t.match(await post({ ...fields, credential: auth.assert(options(body)) }), { ok: false, reason: 'replayed' }, 'the challenge is spent')
  t.same(await post({ user: alice.id, step: 'step-1', credential: auth.assert(options(body)) }), { ok: false, reason: 'wrong' }, 'no ceremony')
})
