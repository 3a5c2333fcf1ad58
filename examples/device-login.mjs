#!/usr/bin/env node
/**
 * Signs a command line in with the device authorization grant (RFC 8628), against the dev stack
 * (`npm start`) by default, with openid-client (a certified relying-party library):
 *
 *   node examples/device-login.mjs [--issuer URL] [--client-id ID] [--scope "..."]
 *
 * It asks the auth service for a device code, prints where to go and which code to enter, polls
 * /token at the interval the server asks for (slower after a slow_down) until you allow or deny
 * it in the browser, then prints the token response as JSON on stdout. Instructions go to stderr,
 * so `node examples/device-login.mjs > tokens.json` keeps them on the screen.
 */
import { parseArgs } from 'node:util'
import * as oidc from 'openid-client'

const { values } = parseArgs({
  options: {
    issuer: { type: 'string', default: process.env.ISSUER ?? 'http://127.0.0.1:4000' },
    'client-id': { type: 'string', default: 'cli-device' },
    scope: { type: 'string', default: 'openid profile documents:read' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help) {
  process.stderr.write('usage: node examples/device-login.mjs [--issuer URL] [--client-id ID] [--scope "openid profile documents:read"]\n')
  process.exit(0)
}

const issuer = new URL(values.issuer)
// Plain http only for the local dev stack; anything else must be https.
const insecure = issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : undefined
try {
  // A public client (token_endpoint_auth_method none): it has no secret to keep on a device.
  const config = await oidc.discovery(issuer, values['client-id'], undefined, oidc.None(), insecure)
  const started = await oidc.initiateDeviceAuthorization(config, { scope: values.scope })
  process.stderr.write(
    `\nTo sign in, open ${started.verification_uri}\nand enter the code  ${started.user_code}\n` +
      (started.verification_uri_complete ? `(or open ${started.verification_uri_complete})\n` : '') +
      `\nWaiting for you to allow it (the code expires in ${Math.round(started.expires_in / 60)} minutes)...\n`,
  )
  const tokens = await oidc.pollDeviceAuthorizationGrant(config, started)
  process.stderr.write(`Signed in${tokens.claims()?.sub ? ` as ${tokens.claims().sub}` : ''}, scope: ${tokens.scope}\n`)
  process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`)
} catch (err) {
  // access_denied, expired_token, a network error: say what it was, no stack trace.
  const code = err?.error ?? err?.code ?? 'error'
  process.stderr.write(`Sign-in failed: ${code}${err?.error_description ? ` (${err.error_description})` : err?.message ? ` (${err.message})` : ''}\n`)
  process.exit(1)
}
