import t from 'tap'
import { parseAuthFileConfig } from '../../src/directory/config-file.js'
import { clientFromConfig } from '../../src/directory/clients.js'
import { loadConfig } from '../../src/config.js'
import { backchannelLogoutUriProblem } from '../../src/logout/client-metadata.js'
import { configProblems, makeApp } from '../helpers.js'

t.test('BACKCHANNEL_LOGOUT_TIMEOUT and BACKCHANNEL_LOGOUT_RETRIES: defaults, values, every bad one named', async (t) => {
  t.same((await loadConfig({})).backchannelLogout, { timeout: 5, retries: 5 })
  t.same((await loadConfig({ BACKCHANNEL_LOGOUT_TIMEOUT: '10', BACKCHANNEL_LOGOUT_RETRIES: '0' })).backchannelLogout, { timeout: 10, retries: 0 })
  const p = await configProblems({ BACKCHANNEL_LOGOUT_TIMEOUT: '0', BACKCHANNEL_LOGOUT_RETRIES: 'many' })
  t.equal(p.length, 2)
  t.ok(p.some((x) => x.startsWith('BACKCHANNEL_LOGOUT_TIMEOUT')))
  t.ok(p.some((x) => x.startsWith('BACKCHANNEL_LOGOUT_RETRIES')))
  t.ok((await configProblems({ BACKCHANNEL_LOGOUT_TIMEOUT: '61', BACKCHANNEL_LOGOUT_RETRIES: '11' })).length === 2, 'bounded above')
})

const base = { client_id: 'rp', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], redirect_uris: ['https://rp/cb'], audience: 'api' }

t.test('client metadata: backchannel_logout_uri and backchannel_logout_session_required', async (t) => {
  const ok = parseAuthFileConfig({ clients: [{ ...base, backchannel_logout_uri: 'https://rp.example/bcl?tenant=1', backchannel_logout_session_required: true }] }, 'f')
  t.same(ok.problems, [])
  const client = clientFromConfig(ok.config.clients[0]!)
  t.equal(client.backchannelLogoutUri, 'https://rp.example/bcl?tenant=1', 'a query is allowed (§2.2)')
  t.equal(client.backchannelLogoutSessionRequired, true)

  const plain = clientFromConfig(parseAuthFileConfig({ clients: [base] }, 'f').config.clients[0]!)
  t.equal(plain.backchannelLogoutUri, undefined)
  t.equal(plain.backchannelLogoutSessionRequired, false, 'default false')

  const bad = parseAuthFileConfig(
    {
      clients: [
        { ...base, client_id: 'a', backchannel_logout_uri: 'https://rp.example/bcl#frag' },
        { ...base, client_id: 'b', backchannel_logout_uri: 'http://rp.example/bcl' },
        { ...base, client_id: 'c', backchannel_logout_uri: '/relative' },
        { ...base, client_id: 'd', backchannel_logout_uri: 'https://rp.example/x', backchannel_logout_session_required: 'yes' },
      ],
    },
    'f',
  )
  t.match(bad.problems, [
    /clients\[0\]\.backchannel_logout_uri must not have a fragment/,
    /clients\[1\]\.backchannel_logout_uri must be https/,
    /clients\[2\]\.backchannel_logout_uri is not an absolute URL/,
    /clients\[3\]\.backchannel_logout_session_required must be true or false/,
  ])
})

t.test('backchannelLogoutUriProblem: https anywhere, http only to loopback, no credentials echoed', async (t) => {
  for (const ok of ['https://rp.example/bcl', 'http://127.0.0.1:8080/bcl', 'http://localhost/bcl', 'http://[::1]:9/bcl', 'http://127.1.2.3/bcl']) {
    t.equal(backchannelLogoutUriProblem(ok), null, ok)
  }
  for (const bad of ['http://rp.example/bcl', 'http://10.0.0.1/bcl', 'ftp://rp.example/x', 'javascript:alert(1)', 'https://rp.example/#', 'http://localhost.evil.example/x']) {
    t.not(backchannelLogoutUriProblem(bad), null, bad)
  }
  const creds = backchannelLogoutUriProblem('https://user:s3cret@rp.example/bcl')
  t.match(creds, /must not carry credentials/)
  t.notMatch(creds, /s3cret/)
})

t.test('discovery advertises back-channel logout with sid', async (t) => {
  const h = await makeApp()
  t.teardown(h.close)
  const doc = (await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })).json()
  t.equal(doc.backchannel_logout_supported, true)
  t.equal(doc.backchannel_logout_session_supported, true)
})
