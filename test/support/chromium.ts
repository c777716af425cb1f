/**
 * Real headless Chromium for the browser tests (demo page, admin dashboard, client SDK bundle),
 * driven by playwright-core against the system's /usr/bin/chromium (no browser download).
 * CI must run these tests; a developer machine without Chromium skips them and says why.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

/** Quiet and self-contained: no GPU, no sandbox (containers, root), nothing fetched from the network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
]

const haveChromium = existsSync(CHROMIUM)

/** The `skip` option of a browser test: false when Chromium is there, and always in CI (where it must be). */
export const skipWithoutChromium: string | false =
  haveChromium || process.env['CI'] === 'true' ? false : `${CHROMIUM} not found: install it (apt-get install -y chromium) to run the browser test`

/** Fail (in CI) with the reason when Chromium is missing. */
export function requireChromium(): void {
  assert.ok(haveChromium, `${CHROMIUM} is missing: CI must run the browser test (apt-get install -y chromium)`)
}

/** Launch headless Chromium; the caller closes it. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 })
}
