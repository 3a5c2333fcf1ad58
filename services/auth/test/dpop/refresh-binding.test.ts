/**
 * A public client's refresh family is bound to the DPoP key of its first proof (RFC 9449 §5):
 * each rotation must prove that key, checked inside the one atomic rotate step, and a refusal
 * neither spends nor revokes the family. On the memory store and on Redis, where a DPoP refresh
 * costs one EVALSHA for the family and one SET for the proof's single use.
 */
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { makeDpopKey, monitorRedis, startRedis, type RedisServer } from '@gatehouse/test-harness'
import { startOidcApp, type OidcApp } from '../oidc/harness.js'
import { PASSWORD, jwtPayload, tokenProof, tokenWithProof } from './helpers.js'

const keyA = makeDpopKey('ES256')
const keyB = makeDpopKey('EdDSA')

/** A family of the public client `spa`, bound to key A, as a DPoP code exchange starts it. */
async function boundFamily(h: OidcApp): Promise<{ id: string; refreshToken: string }> {
  const alice = await h.deps.users.findByUsername('alice')
  if (alice === null) throw new Error('no alice')
  const { family, refreshToken } = await h.deps.families.create({ userId: alice.id, clientId: 'spa', scope: 'openid profile', authTime: h.clock.seconds(), jkt: keyA.jkt })
  return { id: family.id, refreshToken }
}

function refresh(h: OidcApp, refreshToken: string, proof: string | undefined) {
  return tokenWithProof(h.app, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'spa' }, proof, null)
}

function suite(t: Test, env: () => Record<string, string>) {
  t.test('the bound family rotates with key A only; B and no proof are refused and spend nothing', async (t) => {
    const h = await startOidcApp({ env: env() })
    t.teardown(h.close)
    const { id, refreshToken } = await boundFamily(h)
    const before = await h.deps.families.get(id)
    const target = { issuer: h.config.issuer, now: h.clock.now }

    const withB = await refresh(h, refreshToken, tokenProof(target, keyB))
    t.equal(withB.statusCode, 400)
    t.same(withB.json(), { error: 'invalid_grant', error_description: 'the refresh token is bound to another DPoP key' })
    const without = await refresh(h, refreshToken, undefined)
    t.equal(without.statusCode, 400)
    t.match(without.json(), { error: 'invalid_dpop_proof' })
    t.same(await h.deps.families.get(id), before, 'neither spent nor revoked')
    t.equal(h.logs.events('refresh_token.reuse_detected').length, 0)
    t.ok(h.logs.events('refresh_token.rejected').some((e) => e.reason === 'key_mismatch'))

    const withA = await refresh(h, refreshToken, tokenProof(target, keyA))
    t.equal(withA.statusCode, 200, 'key A still rotates the same token')
    t.equal(withA.json().token_type, 'DPoP')
    t.same(jwtPayload(withA.json().access_token).cnf, { jkt: keyA.jkt })
    t.match(await h.deps.families.get(id), { generation: 1, jkt: keyA.jkt, revoked: false })

    // The successor is bound too; a thief holding the spent token without the key cannot revoke the family.
    h.clock.advance(11_000)
    const stolen = await refresh(h, refreshToken, tokenProof(target, keyB))
    t.match(stolen.json(), { error: 'invalid_grant' })
    t.match(await h.deps.families.get(id), { generation: 1, revoked: false }, 'a spent token with another key is not reuse')
    const next = await refresh(h, withA.json().refresh_token, tokenProof(target, keyA))
    t.equal(next.statusCode, 200)
  })

  t.test('the family is bound at its start to the key of the first proof; confidential families are not', async (t) => {
    const h = await startOidcApp({ env: env() })
    t.teardown(h.close)
    const target = { issuer: h.config.issuer, now: h.clock.now }
    // The password grant is for confidential clients: its family stays unbound, whatever the proof.
    const login = await tokenWithProof(h.app, PASSWORD, tokenProof(target, keyA))
    const sid = jwtPayload(login.json().access_token).sid as string
    t.notOk((await h.deps.families.get(sid))?.jkt)
    const r = await tokenWithProof(h.app, { grant_type: 'refresh_token', refresh_token: login.json().refresh_token }, undefined)
    t.equal(r.statusCode, 200, 'a confidential client refreshes without a proof')
    t.equal(r.json().token_type, 'Bearer')
  })
}

t.test('memory', async (t) => suite(t, () => ({})))

t.test('Redis', async (t) => {
  let redis: RedisServer | undefined
  t.before(async () => {
    redis = await startRedis()
  })
  t.teardown(() => redis?.stop())
  suite(t, () => ({ REDIS_URL: redis!.url }))

  t.test('a DPoP refresh costs one EVALSHA (the family) and one SET (the proof): no more', async (t) => {
    const h = await startOidcApp({ env: { REDIS_URL: redis!.url } })
    t.teardown(h.close)
    const target = { issuer: h.config.issuer, now: h.clock.now }
    let { refreshToken } = await boundFamily(h)
    // Warm up: the first script call on a connection loads the script (EVAL).
    refreshToken = (await refresh(h, refreshToken, tokenProof(target, keyA))).json().refresh_token

    const admin = await redis!.client()
    t.teardown(() => admin.close())
    const clients = String(await admin.call('CLIENT', 'LIST'))
    const addr = [...clients.matchAll(/(?:^|\s)addr=(\S+)[^\n]*\sname=(\S+)/gm)].find((m) => m[2] === 'gatehouse')?.[1]
    t.ok(addr, "the service's request connection")
    const monitor = await monitorRedis(redis!.port)
    t.teardown(() => monitor.close())
    // What the request connection sent, but the directory's reads (a copy of the user record
    // that the process cache may load again): those are not the DPoP refresh's cost.
    const sent = async (): Promise<string[]> => {
      const marker = `marker-${randomBytes(4).toString('hex')}`
      await admin.call('ECHO', marker)
      await monitor.waitFor((c) => c.args[1] === marker)
      const mine = monitor.commands.splice(0).filter((c) => c.source === addr && !(c.args[1] ?? '').startsWith('gatehouse:dir:'))
      return mine.map((c) => c.args[0] ?? '')
    }
    await sent()
    const res = await refresh(h, refreshToken, tokenProof(target, keyA))
    t.equal(res.statusCode, 200)
    const commands = await sent()
    t.same(commands.sort(), ['evalsha', 'set'], `one DPoP refresh sent: ${commands.join(', ')}`)

    const refused = await refresh(h, res.json().refresh_token, tokenProof(target, keyB))
    t.equal(refused.statusCode, 400)
    t.same((await sent()).sort(), ['evalsha', 'set'], 'a refused key costs the same, and changes nothing')
  })
})
