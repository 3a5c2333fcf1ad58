import type { Browser } from 'playwright-core'

/** Where Debian's `apt-get install chromium` puts it; CHROMIUM_PATH overrides. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** The flags of a quiet, throw-away headless Chromium (no network of its own, no profile sync). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/**
 * Launches the machine's headless Chromium through playwright-core (never a downloaded browser).
 * playwright-core is loaded here, on first use, not by every test that imports the harness.
 */
export async function launchChromium(opts: { timeoutMs?: number } = {}): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, timeout: opts.timeoutMs ?? 20_000, args: CHROMIUM_ARGS })
}
