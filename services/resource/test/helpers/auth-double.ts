import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'

/**
 * Plays the auth service for the resource service's tests: an RSA key,
 * discovery, JWKS and a client_credentials token endpoint, with tokens
 * signed over node:crypto (the resource service itself depends on no JOSE
 * library; it only uses @gatehouse/verifier's public API).
 */
export const AUDIENCE = 'api://resource'

export interface AuthDouble {
  readonly issuer: string
  readonly jwksUri: string
  readonly tokenEndpoint: string
  readonly counts: { jwks: number; token: number }
  /** client_id -> secret, for client_secret_basic at /token. */
  readonly clients: Map<string, { secret: string; scope: string }>
  /** When set, each JWKS request waits for it (and `onJwks` is told first). */
  holdJwks: Promise<void> | undefined
  onJwks: (() => void) | undefined
  userToken(claims?: Record<string, unknown>): string
  serviceToken(claims?: Record<string, unknown>): string
  close(): Promise<void>
}

interface Key {
  kid: string
  privateKey: KeyObject
  jwk: Record<string, unknown>
}

function makeKey(kid: string): Key {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } }
}

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

export function signJwt(key: { kid: string; privateKey: KeyObject }, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const input = `${b64url({ alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header })}.${b64url(claims)}`
  return `${input}.${sign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`
}

export async function startAuthDouble(): Promise<AuthDouble> {
  const key = makeKey('resource-test-key')
  // forceCloseConnections: a client aborted mid-connect (a verifier closed during its first fetch) must not keep close() waiting.
  const app: FastifyInstance = Fastify({ logger: false, forceCloseConnections: true })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  let base = ''
  const now = (): number => Math.floor(Date.now() / 1000)
  const state: AuthDouble = {
    get issuer() {
      return base
    },
    get jwksUri() {
      return `${base}/jwks.json`
    },
    get tokenEndpoint() {
      return `${base}/token`
    },
    counts: { jwks: 0, token: 0 },
    clients: new Map(),
    holdJwks: undefined,
    onJwks: undefined,
    userToken: (claims = {}) =>
      signJwt(key, {
        iss: base,
        sub: 'user-alice',
        aud: AUDIENCE,
        exp: now() + 900,
        iat: now(),
        jti: randomUUID(),
        client_id: 'web-app',
        scope: 'openid documents:read documents:write',
        roles: ['admin'],
        sid: 'family-1',
        auth_time: now(),
        ...claims,
      }),
    serviceToken: (claims = {}) =>
      signJwt(key, {
        iss: base,
        sub: 'billing',
        aud: AUDIENCE,
        exp: now() + 900,
        iat: now(),
        jti: randomUUID(),
        client_id: 'billing',
        scope: 'internal:read',
        ...claims,
      }),
    close: async () => {
      await app.close()
    },
  }
  app.get('/.well-known/openid-configuration', async () => ({ issuer: base, jwks_uri: state.jwksUri, token_endpoint: state.tokenEndpoint }))
  app.get('/jwks.json', async (_request, reply) => {
    state.counts.jwks++
    state.onJwks?.()
    if (state.holdJwks !== undefined) await state.holdJwks
    return reply.header('cache-control', 'public, max-age=300').send({ keys: [key.jwk] })
  })
  app.post('/token', async (request, reply) => {
    state.counts.token++
    const form = request.body as Record<string, string>
    const basic = /^Basic (.+)$/.exec(request.headers.authorization ?? '')
    const [id, secret] = basic ? Buffer.from(basic[1]!, 'base64').toString().split(':').map((v) => decodeURIComponent(v.replace(/\+/g, ' '))) : []
    const client = id === undefined ? undefined : state.clients.get(id)
    if (client === undefined || client.secret !== secret) {
      return reply.code(401).header('www-authenticate', 'Basic realm="test"').send({ error: 'invalid_client' })
    }
    if (form.grant_type !== 'client_credentials') return reply.code(400).send({ error: 'unsupported_grant_type' })
    const scope = (form.scope ?? client.scope).split(' ').filter((s) => client.scope.split(' ').includes(s)).join(' ')
    const token = state.serviceToken({ sub: id, client_id: id, scope })
    return reply.header('cache-control', 'no-store').send({ access_token: token, token_type: 'Bearer', expires_in: 900, scope })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const addr = app.server.address()
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`
  return state
}
