import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { ManualClock, freePort, makeKey, type SigningKey } from '@gatehouse/test-harness'
import { DEV_CONFIG_FILE, loadConfig } from '../../src/config.js'
import { bootApp, type RecordingRevocationPublisher, type TestApp } from '../helpers.js'

export type ServiceKey = Pick<SigningKey, 'privateKey' | 'publicJwk'>

export interface OidcApp extends TestApp {
  issuer: string
  /** The private_key_jwt client `svc-jwt` (grant client_credentials, scope internal:read). */
  serviceKey: ServiceKey
  /** What the app announced on the revocation feed (memory mode). */
  published(): { sid: string; exp: number }[]
}

export interface OidcAppOptions {
  env?: Record<string, string>
  /** Listen on a free 127.0.0.1 port (the issuer is then that URL). */
  listen?: boolean
  /** The issuer's host name (default 127.0.0.1; `localhost` for passkeys, whose RP ID cannot be an IP address). The server still binds 127.0.0.1. */
  host?: string
  /** Extra clients for the config file. */
  clients?: Record<string, unknown>[]
  /** Extra resources for the config file (after the dev config's `api://resource`). */
  resources?: { audience: string; scopes: string[] }[]
  /** The clock (default: one following real time); a fixed ManualClock for exact time assertions. */
  clock?: ManualClock
}

export const SERVICE_CLIENT_ID = 'svc-jwt'

/**
 * The auth app for the OIDC tests: a config file with the dev clients plus a private_key_jwt
 * service client whose key pair is generated here, a clock that follows real time (so a
 * relying-party library that checks `iat`/`exp` against its own clock agrees) but can be moved
 * ahead, and optionally a listening server on 127.0.0.1.
 */
export async function startOidcApp(options: OidcAppOptions = {}): Promise<OidcApp> {
  const port = options.listen ? await freePort() : 4000
  const issuer = `http://${options.host ?? '127.0.0.1'}:${port}`
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-oidc-'))
  const { privateKey, publicJwk } = await makeKey('svc-key-1', 'ES256')
  const dev = JSON.parse(await readFile(DEV_CONFIG_FILE, 'utf8')) as { clients: Record<string, unknown>[]; resources: unknown[] }
  dev.resources.push(...(options.resources ?? []))
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

  const config = await loadConfig({ LOG_LEVEL: 'info', ISSUER: issuer, AUTH_CONFIG_FILE: configFile, ...options.env })
  const booted = await bootApp(config, options.clock ?? ManualClock.following(Date.now), {}, options.listen ? port : undefined)
  return {
    ...booted,
    issuer,
    serviceKey: { privateKey, publicJwk },
    published: () => (booted.deps.revocations as Partial<RecordingRevocationPublisher>).published ?? [],
    async close() {
      await booted.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export { CookieJar, parseLoginForm, type LoginForm } from '@gatehouse/test-harness'

/** The hidden fields of the logout confirmation page (logout/confirmation.ts). */
export function parseLogoutForm(html: string): { confirm: string; csrf: string } {
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1]
  const confirm = field('confirm')
  const csrf = field('csrf')
  if (confirm === undefined || csrf === undefined) throw new Error('no logout confirmation in the page')
  return { confirm, csrf }
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
