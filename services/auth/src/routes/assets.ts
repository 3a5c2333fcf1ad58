import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'

/**
 * GET /assets/simplewebauthn-browser.js and /assets/passkeys.js: the only scripts any page
 * loads, and only the pages with a WebAuthn ceremony (mfa/passkeys.ts PASSKEY_SCRIPTS; their
 * CSP then allows `script-src 'self'`). The first is @simplewebauthn/browser's UMD bundle (the
 * global `SimpleWebAuthnBrowser`), resolved from this package's dependencies; the second is the
 * glue in services/auth/assets/passkeys.js (beside src/ and dist/, shipped in the image). Both
 * are read once, when the app is built: a missing file fails the start, not a sign-in.
 */
export const ASSET_FILES = {
  'simplewebauthn-browser.js': () => {
    // The package exports only its entry points: find the bundle beside the CommonJS one (script/index.js).
    const entry = createRequire(import.meta.url).resolve('@simplewebauthn/browser')
    return join(dirname(entry), '..', 'dist', 'bundle', 'index.umd.min.js')
  },
  // src/routes/assets.ts and dist/routes/assets.js are both two levels below the package.
  'passkeys.js': () => fileURLToPath(new URL('../../assets/passkeys.js', import.meta.url)),
} as const

/** Registers the asset routes, each file read once now. */
export async function assetRoutes(app: FastifyInstance): Promise<void> {
  for (const [name, locate] of Object.entries(ASSET_FILES)) {
    const body = await readFile(locate())
    app.get(`/assets/${name}`, async (_request, reply) =>
      reply
        .header('content-type', 'text/javascript; charset=utf-8')
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'public, max-age=3600')
        .header('cross-origin-resource-policy', 'same-origin')
        .send(body),
    )
  }
}
