import cookie from '@fastify/cookie'
import type { FastifyInstance } from 'fastify'
import type { AssertionVerifier } from '../directory/client-auth.js'
import type { AuthDeps } from '../runtime/deps.js'
import { authorizeRoute } from './authorize.js'
import { deviceRoute } from './device.js'
import { accountRoute } from './account.js'
import { introspectRoute } from './introspect.js'
import { loginRoute } from './login.js'
import { secondFactorRoute } from './second-factor.js'
import { loginPasskeyRoute } from './login-passkey.js'
import { logoutRoute } from './logout.js'
import { revokeRoute } from './revoke.js'
import { userinfoRoute } from './userinfo.js'

/**
 * The browser and OIDC surface (DESIGN §3): /authorize, /login (its second step
 * /login/second-factor, and passkey sign-in /login/passkey), /userinfo, /revoke, /introspect,
 * /logout, the device verification page /device (RFC 8628 §3.3) and the account page /account.
 */
export async function oidcRoutes(app: FastifyInstance, { deps, verifyAssertion }: { deps: AuthDeps; verifyAssertion?: AssertionVerifier }): Promise<void> {
  const withAssertion = verifyAssertion === undefined ? { deps } : { deps, verifyAssertion }
  // Signed cookies (login session, pending login) for the browser flow, and only here: the plugin
  // parses the Cookie header of every request in its scope, and /token has no use for it.
  // The first secret signs, every one verifies (COOKIE_SECRET rotation, DESIGN §10.1).
  await app.register(cookie, { secret: [...deps.config.cookieSecrets] })
  await app.register(authorizeRoute, { deps })
  await app.register(loginRoute, { deps })
  await app.register(secondFactorRoute, { deps })
  await app.register(loginPasskeyRoute, { deps })
  await app.register(userinfoRoute, { deps })
  await app.register(revokeRoute, withAssertion)
  await app.register(introspectRoute, withAssertion)
  await app.register(logoutRoute, { deps })
  await app.register(deviceRoute, { deps })
  await app.register(accountRoute, { deps })
}
