import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { createVerifier as createFastJwtVerifier } from 'fast-jwt'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { installGracefulShutdown } from '../../packages/service-kit/src/index.js'
import { Verifier } from '../../packages/verifier/src/index.js'
import { buildApp, DocumentStore, loadConfig } from '../../services/resource/src/index.js'

/**
 * The resource service as server.ts runs it (same config, same buildApp, same plugins, logging
 * and metrics), plus three benchmark-only routes added here, never in the service:
 *
 *  - `GET /bench/bare`: the same body and response schema as `GET /documents`, no auth: the
 *    "bare route of the same service" (target 1, cache on);
 *  - `GET /bench/jose`: an onRequest hook that calls jose's `jwtVerify` directly, with a local
 *    JWKS and the verifier's rules (issuer, audience, `typ: at+jwt`, RS256, tolerance), then the
 *    same scope check and body: the "reference route" (target 1, cache off);
 *  - `GET /bench/fast-jwt`: the same with fast-jwt's `createVerifier` (its cache off; the key,
 *    as PEM, from the same JWKS; the same rules: RS256, issuer, audience, `typ`, the RFC 9068
 *    claims, tolerance): a second reference, `node:crypto` called synchronously (issue 18).
 *
 * `--cache off` builds the verifier without its verified-token cache (every request checks the
 * signature). Answers `{type: 'ready', port}` on its IPC channel once the keys are loaded.
 */

const cache = process.argv.includes('--cache') ? process.argv[process.argv.indexOf('--cache') + 1] !== 'off' : true
const config = loadConfig(process.env)
const documents = new DocumentStore([
  { title: 'Quarterly report', body: 'Numbers went up.', owner: 'u_bench' },
  { title: 'Roadmap', body: 'Ship the benchmark.', owner: 'u_bench' },
  { title: 'Minutes', body: 'Nothing to add.', owner: 'u_bench' },
])
const verifier = new Verifier({
  issuer: config.issuer,
  audience: config.audience,
  clockTolerance: config.clockTolerance,
  ...(config.jwksUri === undefined ? {} : { jwksUri: config.jwksUri }),
  cache: cache ? {} : false,
  dpop: { publicUrl: config.publicUrl, nonceSecret: config.dpopNonceSecret },
})
const health = { accepting: true }
const app = buildApp(config, { verifier, documents, health })

const documentSchema = {
  type: 'object',
  properties: { id: { type: 'string' }, title: { type: 'string' }, body: { type: 'string' }, owner: { type: 'string' }, created_at: { type: 'string' } },
} as const
const schema = { response: { 200: { type: 'object', properties: { documents: { type: 'array', items: documentSchema } } } } }
const refusal = { type: 'object', properties: { error: { type: 'string' } } } as const

app.get('/bench/bare', { schema }, async () => ({ documents: documents.list() }))

// The reference: jose alone, configured as the verifier configures it (verifier.ts).
await verifier.ready()
const discovery = (await (await fetch(`${config.issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string }
const keySet = (await (await fetch(config.jwksUri ?? discovery.jwks_uri)).json()) as JSONWebKeySet
const jwks = createLocalJWKSet(keySet)
const joseOptions = { issuer: config.issuer, audience: config.audience, algorithms: ['RS256'], typ: 'at+jwt', clockTolerance: config.clockTolerance }
app.get(
  '/bench/jose',
  {
    schema: { response: { ...schema.response, 401: refusal, 403: refusal } },
    onRequest: async (request, reply) => {
      const header = request.headers.authorization
      if (header === undefined || !header.startsWith('Bearer ')) return reply.code(401).send({ error: 'invalid_token' })
      try {
        const { payload } = await jwtVerify(header.slice(7), jwks, joseOptions)
        if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes('documents:read')) return reply.code(403).send({ error: 'insufficient_scope' })
      } catch {
        return reply.code(401).send({ error: 'invalid_token' })
      }
    },
  },
  async () => ({ documents: documents.list() }),
)

// The second reference: fast-jwt without its cache, the issuer's (one) RSA key as PEM.
const rsa = keySet.keys.find((k) => k.kty === 'RSA')
if (rsa === undefined) throw new Error('the JWKS has no RSA key')
const pem = createPublicKey({ key: rsa as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()
const fastJwt = createFastJwtVerifier({
  key: pem,
  algorithms: ['RS256'],
  allowedIss: config.issuer,
  allowedAud: config.audience,
  checkTyp: 'at+jwt',
  requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
  clockTolerance: config.clockTolerance * 1000, // fast-jwt counts milliseconds
  cache: false,
})
app.get(
  '/bench/fast-jwt',
  {
    schema: { response: { ...schema.response, 401: refusal, 403: refusal } },
    onRequest: async (request, reply) => {
      const header = request.headers.authorization
      if (header === undefined || !header.startsWith('Bearer ')) return reply.code(401).send({ error: 'invalid_token' })
      try {
        const payload = fastJwt(header.slice(7)) as { scope?: unknown }
        if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes('documents:read')) return reply.code(403).send({ error: 'insufficient_scope' })
      } catch {
        return reply.code(401).send({ error: 'invalid_token' })
      }
    },
  },
  async () => ({ documents: documents.list() }),
)

installGracefulShutdown(app, { onStart: () => (health.accepting = false), timeoutMs: 5000 })
await app.listen({ host: config.host, port: config.port })
process.send?.({ type: 'ready', port: config.port })
