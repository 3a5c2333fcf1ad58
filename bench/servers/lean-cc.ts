import { createHash, generateKeyPairSync, randomBytes, sign, timingSafeEqual } from 'node:crypto'
import formbody from '@fastify/formbody'
import Fastify from 'fastify'

/**
 * A floor for target 2, not a product: the least a fastify client_credentials endpoint can do
 * (the issue's "lean fastify endpoint": form parse, constant-time secret check, RS256 sign), so a
 * run shows how much of the raw signing rate fastify and HTTP leave on this machine. It signs the
 * same claims as Gatehouse with `node:crypto` (as Gatehouse does), and has none of what a
 * service needs: no logging, no request ids, no metrics, no schema, no error model beyond 400/401.
 *
 * Env: PORT, ISSUER, CLIENT_ID, CLIENT_SECRET, AUDIENCE, SCOPE.
 * Answers `{type: 'ready', port}` on its IPC channel once it listens.
 */

const port = Number(process.env.PORT)
const issuer = process.env.ISSUER ?? `http://127.0.0.1:${port}`
const audience = process.env.AUDIENCE ?? 'api://resource'
const scope = process.env.SCOPE ?? 'documents:read'
const clientId = process.env.CLIENT_ID ?? 'bench-service'
const secretDigest = createHash('sha256')
  .update(process.env.CLIENT_SECRET ?? 'bench-service-secret')
  .digest()
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'lean' })).toString('base64url')

const app = Fastify({ logger: false })
await app.register(formbody)
app.post('/token', async (request, reply) => {
  const body = request.body as Record<string, unknown>
  const auth = request.headers.authorization
  if (body.grant_type !== 'client_credentials' || auth === undefined || !auth.startsWith('Basic ')) return reply.code(400).send({ error: 'invalid_request' })
  const decoded = Buffer.from(auth.slice(6), 'base64').toString()
  const colon = decoded.indexOf(':')
  const ok = colon > 0 && decoded.slice(0, colon) === clientId && timingSafeEqual(createHash('sha256').update(decoded.slice(colon + 1)).digest(), secretDigest)
  if (!ok) return reply.code(401).send({ error: 'invalid_client' })
  const iat = Math.floor(Date.now() / 1000)
  const claims = { iss: issuer, sub: clientId, aud: audience, exp: iat + 900, iat, jti: randomBytes(16).toString('base64url'), client_id: clientId, scope }
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
  const token = `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`
  void reply.header('cache-control', 'no-store')
  return { access_token: token, token_type: 'Bearer', expires_in: 900, scope }
})
await app.listen({ host: '127.0.0.1', port })
process.send?.({ type: 'ready', port })
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)))
