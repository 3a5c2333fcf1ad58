import t from 'tap'
import { configProblems as problems } from './helpers.js'
import { writeFileSync } from 'node:fs'
import { loadConfig } from '../src/config.js'


t.test('defaults are the DESIGN §3 values', async (t) => {
  const c = await loadConfig({})
  t.match(c, {
    host: '127.0.0.1',
    port: 4000,
    issuer: 'http://127.0.0.1:4000',
    redis: null,
    accessTokenTtl: 900,
    refreshTokenTtl: 2592000,
    refreshTokenIdleTtl: 604800,
    refreshReuseGrace: 10,
    logLevel: 'info',
    cookieSecretGenerated: true,
  })
  t.ok(Object.isFrozen(c))
})

t.test('every bad value is named, all at once', async (t) => {
  const p = await problems({ PORT: 'eighty', ACCESS_TOKEN_TTL: '-5', REDIS_URL: 'http://x', LOG_LEVEL: 'loud', ISSUER: 'not a url' })
  t.equal(p.length, 5)
  for (const name of ['PORT', 'ACCESS_TOKEN_TTL', 'REDIS_URL', 'LOG_LEVEL', 'ISSUER']) t.ok(p.some((x) => x.startsWith(name)), name)
})

t.test('production refuses the development fallbacks', async (t) => {
  const p = await problems({ NODE_ENV: 'production' })
  for (const name of ['AUTH_CONFIG_FILE', 'REDIS_URL', 'SIGNING_KEYS_FILE', 'COOKIE_SECRET', 'REFRESH_TOKEN_SECRET']) t.ok(p.some((x) => x.startsWith(name)), name)
})

t.test('COOKIE_SECRET and REFRESH_TOKEN_SECRET: lists, 32+ characters, never a published value in production (DESIGN §10.1)', async (t) => {
  const a = 'a'.repeat(32)
  const b = 'b'.repeat(40)
  const prod = { NODE_ENV: 'production', AUTH_CONFIG_FILE: new URL('../config/dev.json', import.meta.url).pathname, REDIS_URL: 'redis://127.0.0.1:1', SIGNING_KEYS_FILE: '/nonexistent/keys.json' }
  t.same(await problems({ ...prod, COOKIE_SECRET: a, REFRESH_TOKEN_SECRET: b }), [], 'both set: accepted')
  const lists = await loadConfig({ COOKIE_SECRET: ` ${b} , ${a}`, REFRESH_TOKEN_SECRET: `${a},${b}` })
  t.same(lists.cookieSecrets, [b, a], 'a comma-separated list, trimmed, in order')
  t.equal(lists.cookieSecret, b, 'the first signs')
  t.same(lists.refreshTokenSecrets, [a, b])
  t.equal(lists.refreshTokenSecretFromCookie, false)

  for (const name of ['COOKIE_SECRET', 'REFRESH_TOKEN_SECRET']) {
    const other: Record<string, string> = name === 'COOKIE_SECRET' ? { REFRESH_TOKEN_SECRET: b } : { COOKIE_SECRET: b }
    t.match(await problems({ ...prod, ...other }), [new RegExp(`^${name} \\(or ${name}_FILE\\) is required`)], `${name} is required in production`)
    t.match(await problems({ ...prod, ...other, [name]: 'short' }), [new RegExp(`^${name} must be at least 32`)], `${name}: short`)
    t.match(await problems({ ...prod, ...other, [name]: `${a},short` }), [new RegExp(`^${name} must be at least 32`)], `${name}: every secret of the list is checked`)
    for (const published of ['dev-only-compose-cookie-secret-not-for-production', 'outage-test-cookie-secret-0123456789abcdef']) {
      t.match(await problems({ ...prod, ...other, [name]: published }), [new RegExp(`^${name} is a published development value`)], `${name}: ${published} refused in production`)
      t.match(await problems({ ...prod, ...other, [name]: `${a},${published}` }), [new RegExp(`^${name} is a published`)], `${name}: even as an older secret`)
    }
    t.match(await problems({ ...prod, ...other, [name]: ' , ' }), [new RegExp(`^${name} must list at least one secret`)])
  }
  t.same(await problems({ COOKIE_SECRET: 'dev-only-compose-cookie-secret-not-for-production' }), [], 'outside production a published value still works (existing dev setups)')
})

t.test('COOKIE_SECRET_FILE and REFRESH_TOKEN_SECRET_FILE: read when the variable is unset (docker-compose generates them)', async (t) => {
  const a = 'a'.repeat(32)
  const b = 'b'.repeat(40)
  const dir = t.testdir({ cookie: `${a}\n`, refresh: ` ${b},${a} \n`, empty: '\n', short: 'short', published: 'dev-only-compose-cookie-secret-not-for-production' })
  const prod = { NODE_ENV: 'production', AUTH_CONFIG_FILE: new URL('../config/dev.json', import.meta.url).pathname, REDIS_URL: 'redis://127.0.0.1:1', SIGNING_KEYS_FILE: '/nonexistent/keys.json' }
  const files = { COOKIE_SECRET_FILE: `${dir}/cookie`, REFRESH_TOKEN_SECRET_FILE: `${dir}/refresh` }
  t.same(await problems({ ...prod, ...files }), [], 'both from files: accepted in production')
  const read = await loadConfig(files)
  t.same(read.cookieSecrets, [a], 'the trailing newline is trimmed')
  t.same(read.refreshTokenSecrets, [b, a], 'a file holds a list like the variable')
  const set = await loadConfig({ ...files, COOKIE_SECRET: b })
  t.same(set.cookieSecrets, [b], 'a variable that is set wins over its file')
  t.same((await loadConfig({ ...files, COOKIE_SECRET: '' })).cookieSecrets, [a], 'an empty variable (compose passes ${COOKIE_SECRET:-}) is unset')

  const missing = await problems({ ...prod, ...files, COOKIE_SECRET_FILE: `${dir}/nope` })
  t.match(missing, [/^COOKIE_SECRET_FILE: cannot read .*\/nope \(ENOENT\)$/, /^COOKIE_SECRET \(or COOKIE_SECRET_FILE\) is required/], 'an unreadable file is named')
  t.match(await problems({ ...prod, ...files, COOKIE_SECRET_FILE: `${dir}/empty` }), [/^COOKIE_SECRET_FILE: .*empty is empty$/, /is required/])
  t.match(await problems({ ...prod, ...files, REFRESH_TOKEN_SECRET_FILE: `${dir}/short` }), [/^REFRESH_TOKEN_SECRET must be at least 32/], 'the same rules as the variable')
  const published = await problems({ ...prod, ...files, COOKIE_SECRET_FILE: `${dir}/published` })
  t.match(published, [/^COOKIE_SECRET is a published development value/])
  t.notMatch(published.join('\n'), /dev-only-compose/, 'a problem never prints the secret')
})

t.test('outside production REFRESH_TOKEN_SECRET defaults to the cookie secrets, so existing dev setups keep their refresh tokens', async (t) => {
  const shared = await loadConfig({ COOKIE_SECRET: 'c'.repeat(32) })
  t.same(shared.refreshTokenSecrets, ['c'.repeat(32)])
  t.equal(shared.refreshTokenSecretFromCookie, true)
  const generated = await loadConfig({})
  t.equal(generated.cookieSecretGenerated, true)
  t.same(generated.refreshTokenSecrets, generated.cookieSecrets, 'generated once, used for both')
})

t.test('redis topologies', async (t) => {
  t.same((await loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001' })).redis, {
    clusterNodes: [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ],
  })
  t.same((await loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'mymaster' })).redis, {
    sentinels: [{ host: 's1', port: 26379 }],
    sentinelName: 'mymaster',
  })
  t.ok((await problems({ REDIS_SENTINELS: 's1:26379' })).some((x) => x.startsWith('REDIS_SENTINEL_NAME')))
  t.ok((await problems({ REDIS_URL: 'redis://a', REDIS_CLUSTER_NODES: 'b:1' })).length === 1)
  t.ok((await problems({ REDIS_CLUSTER_NODES: 'nohost' })).some((x) => x.startsWith('REDIS_CLUSTER_NODES')))
})

t.test('config file problems name the file and the path', async (t) => {
  const dir = t.testdir({
    'bad.json': JSON.stringify({
      clients: [
        { client_id: 'a', token_endpoint_auth_method: 'client_secret_basic', grant_types: ['password', 'implicit'] },
        { client_id: 'a', token_endpoint_auth_method: 'none', grant_types: ['client_credentials'] },
      ],
      users: [{ username: 'x' }, { username: 'X', password: 'p', roles: 'admin' }],
    }),
    'notjson.json': '{',
  })
  const p = await problems({ AUTH_CONFIG_FILE: `${dir}/bad.json` })
  t.ok(p.every((x) => x.startsWith('AUTH_CONFIG_FILE')))
  for (const frag of ['clients[0] needs client_secret', 'clients[0].grant_types has unsupported grant "implicit"', 'clients[1].client_id duplicates a', 'clients[1].grant_types a public client', 'users[0] needs password', 'users[1].username duplicates', 'users[1].roles must be an array']) {
    t.ok(p.some((x) => x.includes(frag)), frag)
  }
  t.match((await problems({ AUTH_CONFIG_FILE: `${dir}/notjson.json` }))[0], /not valid JSON/)
  t.match((await problems({ AUTH_CONFIG_FILE: `${dir}/missing.json` }))[0], /cannot read .*ENOENT/)
  writeFileSync(`${dir}/empty.json`, '{}')
  t.match((await problems({ AUTH_CONFIG_FILE: `${dir}/empty.json` }))[0], /defines no clients/)
})

t.test('redirect URIs follow RFC 8252 and RFC 9700: https, loopback http, or a private-use scheme; each refusal names the client and the URI', async (t) => {
  const bad = [
    'javascript:alert(document.cookie)//',
    'data:text/html,<script>alert(1)</script>',
    'JavaScript:alert(1)',
    'vbscript:msgbox(1)',
    'file:///etc/passwd',
    'http://app.example.com/cb',
    'http://127.0.0.1.evil.example/cb',
    'http://10.0.0.5/cb',
    'https://user:pass@app.example.com/cb',
    'https://app.example.com/cb#frag',
    'myapp:/cb',
    'not a url',
  ]
  const good = ['https://app.example.com/cb', 'http://127.0.0.1:3000/cb', 'http://[::1]:8080/cb', 'http://localhost:3000/cb', 'com.example.app:/oauth2redirect', 'https://app.example.com/cb?x=1']
  const dir = t.testdir({
    'bad.json': JSON.stringify({
      clients: [
        { client_id: 'victim-app', client_secret: 's', grant_types: ['authorization_code'], redirect_uris: bad },
        { client_id: 'logout-app', client_secret: 's', grant_types: ['authorization_code'], redirect_uris: ['https://ok.example/cb'], post_logout_redirect_uris: ['javascript:alert(1)', 'http://app.example.com/'] },
      ],
    }),
    'good.json': JSON.stringify({
      clients: [{ client_id: 'fine', client_secret: 's', grant_types: ['authorization_code'], redirect_uris: good, post_logout_redirect_uris: good }],
    }),
  })
  const p = await problems({ AUTH_CONFIG_FILE: `${dir}/bad.json` })
  for (const u of bad) {
    t.ok(p.some((x) => x.includes('clients[0].redirect_uris of client "victim-app"') && x.includes(JSON.stringify(u))), `refused, naming the client and the URI: ${u}`)
  }
  t.ok(p.some((x) => /clients\[1\]\.post_logout_redirect_uris of client "logout-app": "javascript:alert\(1\)" uses the scheme "javascript:"/.test(x)), 'post-logout URIs too')
  t.ok(p.some((x) => x.includes('"http://app.example.com/" uses plain http on a host that is not loopback')))
  t.same(await problems({ AUTH_CONFIG_FILE: `${dir}/good.json` }), [], 'https, loopback http and private-use schemes are accepted')
})

t.test('client resources (RFC 8707 §2): absolute URIs without a fragment, each a configured resource when the file names any', async (t) => {
  const bad = ['reports', '/reports', 'api://reports#frag', 'api://reports#', ' api://reports', 'api://rep orts', 'api://résumé', 'http://[::1', `api://${'x'.repeat(2048)}`]
  const resources = [{ audience: 'api://resource', scopes: ['documents:read'] }, { audience: 'api://reports', scopes: ['reports:read'] }]
  const client = (extra: Record<string, unknown>) => ({ client_id: 'dash', client_secret: 's', grant_types: ['client_credentials'], audience: 'api://resource', ...extra })
  const dir = t.testdir({
    // No resources in this file: every refusal is the syntax's.
    'bad.json': JSON.stringify({ clients: [client({ resources: bad })] }),
    'unknown.json': JSON.stringify({ resources, clients: [client({ resources: ['api://reports', 'api://nowhere'] })] }),
    'shape.json': JSON.stringify({ resources, clients: [client({ resources: 'api://reports' })] }),
    'good.json': JSON.stringify({ resources, clients: [client({ resources: ['api://reports', 'api://reports'] })] }),
    'no-catalog.json': JSON.stringify({ clients: [client({ resources: ['api://anything', 'urn:example:api'] })] }),
  })
  const p = await problems({ AUTH_CONFIG_FILE: `${dir}/bad.json` })
  for (const u of bad) t.ok(p.some((x) => x.includes('clients[0].resources of client "dash"') && x.includes(JSON.stringify(u.slice(0, 256)))), `refused: ${u.slice(0, 40)}`)
  t.ok(p.some((x) => x.endsWith('"api://reports#frag" must not have a fragment (RFC 8707 §2)')))
  t.ok(p.some((x) => x.endsWith('" api://reports" is not an absolute URI')))
  t.equal(p.length, bad.length, 'one problem each, no more')
  t.match(await problems({ AUTH_CONFIG_FILE: `${dir}/unknown.json` }), [/clients\[0\]\.resources of client "dash": "api:\/\/nowhere" is not the audience of a configured resource/])
  t.match(await problems({ AUTH_CONFIG_FILE: `${dir}/shape.json` }), [/clients\[0\]\.resources must be an array of strings/])
  t.same(await problems({ AUTH_CONFIG_FILE: `${dir}/good.json` }), [])
  const config = await loadConfig({ AUTH_CONFIG_FILE: `${dir}/good.json` })
  t.same(config.file.clients[0]?.resources, ['api://reports'], 'kept once')
  t.same(await problems({ AUTH_CONFIG_FILE: `${dir}/no-catalog.json` }), [], 'no resources in the file (the database holds them): only the syntax is checked')
})

t.test('the audit trail: AUDIT_RETENTION_DAYS (0 = forever) and AUDIT_BUFFER_SIZE', async (t) => {
  t.same((await loadConfig({})).audit, { retentionDays: 90, bufferSize: 10_000 })
  t.same((await loadConfig({ AUDIT_RETENTION_DAYS: '0', AUDIT_BUFFER_SIZE: '500' })).audit, { retentionDays: 0, bufferSize: 500 })
  const p = await problems({ AUDIT_RETENTION_DAYS: '-1', AUDIT_BUFFER_SIZE: '10' })
  t.equal(p.length, 2)
  t.ok(p.some((x) => x.startsWith('AUDIT_RETENTION_DAYS')))
  t.ok(p.some((x) => x.startsWith('AUDIT_BUFFER_SIZE')))
})

t.test('DATABASE_URL_FILE: the URL (with its password) from a file, checked, never quoted', async (t) => {
  const url = 'postgres://gatehouse:file-password-123@db:5432/gatehouse'
  const dir = t.testdir({ url: `${url}\n`, wrong: 'mysql://root:file-password-123@db/x', junk: 'not a url file-password-123' })
  const read = await loadConfig({ DATABASE_URL_FILE: `${dir}/url` })
  t.equal(read.database?.url, url, 'read when DATABASE_URL is unset, the newline trimmed')
  t.equal((await loadConfig({ DATABASE_URL_FILE: `${dir}/url`, DATABASE_URL: 'postgres://other@db/x' })).database?.url, 'postgres://other@db/x', 'a DATABASE_URL that is set wins')
  t.equal((await loadConfig({ DATABASE_URL_FILE: `${dir}/url`, DATABASE_URL: '' })).database?.url, url, 'an empty DATABASE_URL (compose passes ${DATABASE_URL:-}) is unset')
  for (const bad of ['wrong', 'junk']) {
    const p = await problems({ DATABASE_URL_FILE: `${dir}/${bad}` })
    t.same(p, ['DATABASE_URL_FILE must hold a postgres:// or postgresql:// URL'], `${bad}: refused`)
    t.notMatch(p.join('\n'), /file-password-123/, 'the content is never quoted')
  }
  t.match(await problems({ DATABASE_URL_FILE: `${dir}/nope` }), [/^DATABASE_URL_FILE: cannot read .*\/nope \(ENOENT\)$/])
})

t.test('pushed authorization requests (RFC 9126): PAR_TTL (seconds, 60 by default) and REQUIRE_PAR (false by default)', async (t) => {
  t.match(await loadConfig({}), { parTtl: 60, requirePar: false })
  t.match(await loadConfig({ PAR_TTL: '600', REQUIRE_PAR: 'true' }), { parTtl: 600, requirePar: true })
  const p = await problems({ PAR_TTL: '0', REQUIRE_PAR: 'yes' })
  t.equal(p.length, 2)
  t.ok(p.some((x) => x.startsWith('PAR_TTL')), 'PAR_TTL 0')
  t.ok(p.some((x) => x.startsWith('REQUIRE_PAR')), 'REQUIRE_PAR yes')
  t.ok((await problems({ PAR_TTL: '601' })).some((x) => x.startsWith('PAR_TTL')), 'PAR_TTL above 600')
  t.ok((await problems({ PAR_TTL: '1.5' })).some((x) => x.startsWith('PAR_TTL')), 'PAR_TTL not whole')
})

t.test('client metadata require_mfa (DESIGN §10.5): a boolean, false when absent; only for the code flow', async (t) => {
  const client = { client_id: 'c', client_secret: 's', grant_types: ['authorization_code', 'refresh_token'], redirect_uris: ['https://app.example/cb'] }
  const dir = t.testdir({
    'bad.json': JSON.stringify({ clients: [{ ...client, require_mfa: 'yes' }] }),
    'password.json': JSON.stringify({ clients: [{ ...client, grant_types: ['authorization_code', 'password'], require_mfa: true }] }),
    'device.json': JSON.stringify({ clients: [{ ...client, grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], require_mfa: true }] }),
    'good.json': JSON.stringify({ clients: [{ ...client, require_mfa: true }, { ...client, client_id: 'd', require_mfa: false }, { ...client, client_id: 'e' }] }),
  })
  t.ok((await problems({ AUTH_CONFIG_FILE: `${dir}/bad.json` })).some((x) => x.includes('clients[0].require_mfa must be true or false')))
  t.ok((await problems({ AUTH_CONFIG_FILE: `${dir}/password.json` })).some((x) => x.includes('clients[0].require_mfa cannot be met by the password grant')), 'a password at /token never has a second factor')
  t.ok((await problems({ AUTH_CONFIG_FILE: `${dir}/device.json` })).some((x) => x.includes('clients[0].require_mfa cannot be met by the urn:ietf:params:oauth:grant-type:device_code grant')))
  const { file } = await loadConfig({ AUTH_CONFIG_FILE: `${dir}/good.json` })
  t.equal(file.clients[0]!.require_mfa, true)
  t.notOk('require_mfa' in file.clients[1]!, 'false is stored as absent')
  t.notOk('require_mfa' in file.clients[2]!)
})

t.test('client metadata require_pushed_authorization_requests (RFC 9126 §6): a boolean, false when absent', async (t) => {
  const client = { client_id: 'c', client_secret: 's', grant_types: ['authorization_code'], redirect_uris: ['https://app.example/cb'] }
  const dir = t.testdir({
    'bad.json': JSON.stringify({ clients: [{ ...client, require_pushed_authorization_requests: 'yes' }] }),
    'good.json': JSON.stringify({ clients: [{ ...client, require_pushed_authorization_requests: true }, { ...client, client_id: 'd' }] }),
  })
  t.ok((await problems({ AUTH_CONFIG_FILE: `${dir}/bad.json` })).some((x) => x.includes('clients[0].require_pushed_authorization_requests must be true or false')))
  const { file } = await loadConfig({ AUTH_CONFIG_FILE: `${dir}/good.json` })
  t.equal(file.clients[0]!.require_pushed_authorization_requests, true)
  t.notOk('require_pushed_authorization_requests' in file.clients[1]!)
})
