import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'
import { freePort } from '@gatehouse/test-harness'
import { buildApp } from '../../src/app.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'
import { DEV_CONFIG_FILE, loadConfig, type AuthConfig } from '../../src/config.js'
import type { AuthDeps } from '../../src/runtime/deps.js'
import type { NoopRevocationPublisher } from '../../src/families/revocation-publisher.js'
import { LogCapture } from '../helpers.js'

/**
 * The auth app for the OIDC tests: a config file with the dev clients plus a private_key_jwt
 * service client whose key pair is generated here, a clock that follows real time (so a
 * relying-party library that checks `iat`/`exp` against its own clock agrees) but can be moved
 * ahead, and optionally a listening server on 127.0.0.1.
 */
export class OffsetClock {
  offsetMs = 0
  readonly now = (): number => Date.now() + this.offsetMs
  advance(seconds: number): void {
    this.offsetMs += seconds * 1000
  }
}

export interface ServiceKey {
  privateKey: CryptoKey
  publicJwk: JWK
}

export interface OidcApp {
  app: FastifyInstance
  deps: AuthDeps
  config: AuthConfig
  clock: OffsetClock
  logs: LogCapture
  issuer: string
  /** The private_key_jwt client `svc-jwt` (grant client_credentials, scope internal:read). */
  serviceKey: ServiceKey
  /** What the app announced on the revocation feed (memory mode). */
  published(): { sid: string; exp: number }[]
  close(): Promise<void>
}

export interface OidcAppOptions {
  env?: Record<string, string>
  /** Listen on a free 127.0.0.1 port (the issuer is then that URL). */
  listen?: boolean
  /** Extra clients for the config file. */
  clients?: Record<string, unknown>[]
}

export const SERVICE_CLIENT_ID = 'svc-jwt'

export async function startOidcApp(options: OidcAppOptions = {}): Promise<OidcApp> {
  const port = options.listen ? await freePort() : 4000
  const issuer = `http://127.0.0.1:${port}`
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-oidc-'))
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'svc-key-1', alg: 'ES256', use: 'sig' }
  const dev = JSON.parse(await readFile(DEV_CONFIG_FILE, 'utf8')) as { clients: Record<string, unknown>[] }
  dev.clients.push(
    {
      client_id: SERVICE_CLIENT_ID,
      client_name: 'Test service (private_key_jwt)',
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['client_credentials'],
      scope: 'internal:read documents:read',
      audience: 'api://resource',
      jwks: { keys: [publicJwk] },
      introspection: true,
    },
    ...(options.clients ?? []),
  )
  const configFile = join(dir, 'auth.json')
  await writeFile(configFile, JSON.stringify(dev))

  const clock = new OffsetClock()
  const config = await loadConfig({ LOG_LEVEL: 'info', ISSUER: issuer, AUTH_CONFIG_FILE: configFile, ...options.env })
  const logs = new LogCapture()
  const runtime = await createRuntime(config, { warn() {}, info() {} }, clock.now)
  const app = await buildApp(runtime.deps, { logStream: logs })
  if (options.listen) await app.listen({ host: '127.0.0.1', port })
  else await app.ready()
  return {
    app,
    deps: runtime.deps,
    config,
    clock,
    logs,
    issuer,
    serviceKey: { privateKey, publicJwk },
    published: () => (runtime.deps.revocations as NoopRevocationPublisher).published ?? [],
    async close() {
      await app.close()
      await runtime.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A minimal cookie jar for driving the login form with fetch (name → value, no attributes). */
export class CookieJar {
  readonly cookies = new Map<string, string>()
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      if (value === '' || /max-age=0/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }
}

export interface LoginForm {
  interaction: string
  csrf: string
}

/** The hidden fields of the login page. */
export function parseLoginForm(html: string): LoginForm {
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1]
  const interaction = field('interaction')
  const csrf = field('csrf')
  if (interaction === undefined || csrf === undefined) throw new Error('no login form in the page')
  return { interaction, csrf }
}

/** The hidden fields of the logout confirmation page (logout/confirmation.ts). */
export function parseLogoutForm(html: string): { confirm: string; csrf: string } {
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1]
  const confirm = field('confirm')
  const csrf = field('csrf')
  if (confirm === undefined || csrf === undefined) throw new Error('no logout confirmation in the page')
  return { confirm, csrf }
}

/**
 * Follows the browser part of the code flow with plain fetch: GET the authorization URL (the
 * login page, or straight to the client when the session is live), POST the form with the
 * cookies, and return the redirect back to the client.
 */
export async function browserLogin(authorizationUrl: URL, jar: CookieJar, username = 'alice', password = 'alice-password'): Promise<URL> {
  const page = await fetch(authorizationUrl, { redirect: 'manual', headers: { cookie: jar.header() } })
  jar.store(page)
  if (page.status === 302) return new URL(page.headers.get('location')!)
  if (page.status !== 200) throw new Error(`/authorize answered ${page.status}: ${await page.text()}`)
  const form = parseLoginForm(await page.text())
  const res = await fetch(new URL('login', authorizationUrl), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() },
    body: new URLSearchParams({ ...form, username, password }),
  })
  jar.store(res)
  if (res.status !== 303) throw new Error(`/login answered ${res.status}: ${await res.text()}`)
  return new URL(res.headers.get('location')!)
}

/** Asserts that `p` rejects with an error matching `wanted` (e.g. openid-client's `{ error: 'invalid_grant' }`). */
export async function rejectsWith(t: Test, p: Promise<unknown>, wanted: Record<string, unknown>, message = `rejects with ${JSON.stringify(wanted)}`): Promise<void> {
  try {
    await p
    t.fail(message)
  } catch (err) {
    t.match(err, wanted, message)
  }
}
