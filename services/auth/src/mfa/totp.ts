import { randomBytes } from 'node:crypto'
import { Secret, TOTP } from 'otpauth'
import QRCode from 'qrcode'

/**
 * Authenticator apps (TOTP, RFC 6238) through `otpauth`: a new shared secret, the `otpauth://`
 * URI an app scans, and the check of a code. The parameters are the defaults every app supports
 * (Google Authenticator key URI format): HMAC-SHA1, 6 digits, 30-second steps; a secret of 20
 * random bytes (160 bits, RFC 4226 §4 R6 recommends it).
 */
export const TOTP_ALGORITHM = 'SHA1'
export const TOTP_DIGITS = 6
export const TOTP_PERIOD_SECONDS = 30
export const TOTP_SECRET_BYTES = 20
/**
 * Steps accepted either side of the current one (RFC 6238 §5.2: "at most one time step" of
 * network delay is recommended), so a code typed just as it changed still counts.
 */
export const TOTP_WINDOW = 1
/** The service's name in an authenticator app: "Gatehouse (auth.example.com)". */
export const TOTP_SERVICE_NAME = 'Gatehouse'

/** A new random secret, base32 (what the app is given and what is sealed at rest). */
export function newTotpSecret(): string {
  // A copy of its own: randomBytes may hand out a view into a shared pool.
  return new Secret({ buffer: new Uint8Array(randomBytes(TOTP_SECRET_BYTES)).buffer }).base32
}

/**
 * The issuer an app shows: the service's name and the issuer's host, so two Gatehouse
 * deployments are told apart. A host with a colon (IPv6) is left out: a colon separates the
 * issuer from the account in the URI's label.
 */
export function totpIssuer(issuerUrl: string): string {
  const host = new URL(issuerUrl).hostname
  return host === '' || host.includes(':') ? TOTP_SERVICE_NAME : `${TOTP_SERVICE_NAME} (${host})`
}

function totp(secret: string, issuer = '', label = 'OTPAuth'): TOTP {
  return new TOTP({ issuer, label, secret: Secret.fromBase32(secret), algorithm: TOTP_ALGORITHM, digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS })
}

/** The `otpauth://totp/...` URI of a secret for `username` (label) at the issuer `issuerUrl`. */
export function totpUri(secret: string, issuerUrl: string, username: string): string {
  return totp(secret, totpIssuer(issuerUrl), username).toString()
}

/**
 * The QR code of an `otpauth://` URI as an inline SVG document (dark modules on white, a quiet
 * zone of 2 modules). Inline, so the page's CSP (`default-src 'none'`) needs no img-src; only
 * paths with presentation attributes, so no style-src either.
 */
export async function totpQrSvg(uri: string): Promise<string> {
  return await QRCode.toString(uri, { type: 'svg', margin: 2, width: 224, errorCorrectionLevel: 'M', color: { dark: '#000000', light: '#ffffff' } })
}

/** The secret in groups of four, for typing it into an app by hand. */
export function groupedSecret(secret: string): string {
  return secret.replace(/(.{4})(?=.)/g, '$1 ')
}

/** The time step (RFC 6238 T) of a clock time, ms epoch. */
export function totpStep(atMs: number): number {
  return Math.floor(atMs / 1000 / TOTP_PERIOD_SECONDS)
}

/** A typed code without its spaces, if it is exactly six digits; null otherwise. */
export function normaliseTotpCode(code: string): string | null {
  const digits = code.replace(/\s+/g, '')
  return /^[0-9]{6}$/.test(digits) ? digits : null
}

/**
 * The step (RFC 6238 T) whose code `code` is, among the current step at `atMs` and
 * TOTP_WINDOW either side; null when it matches none or is not six digits (refused without an
 * HMAC). The caller then records the step with the factor store's `useTotpStep`, which refuses
 * that step or an earlier one (RFC 6238 §5.2: a code is accepted once). Comparison is constant
 * time (otpauth's timingSafeEqual).
 */
export function verifyTotp(secret: string, code: string, atMs: number): number | null {
  const token = normaliseTotpCode(code)
  if (token === null) return null
  const delta = totp(secret).validate({ token, timestamp: atMs, window: TOTP_WINDOW })
  return delta === null ? null : totpStep(atMs) + delta
}

/** The code of a secret at a clock time (tests and the CLI's checks; never used to verify). */
export function totpCode(secret: string, atMs: number): string {
  return totp(secret).generate({ timestamp: atMs })
}
