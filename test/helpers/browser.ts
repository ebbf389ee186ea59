import { existsSync } from 'node:fs'
import type { Test } from 'tap'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Why the browser tests cannot run here, or undefined when they can. CI
 * (`.ci/run`) installs Debian's chromium and sets REALTIME_REQUIRE_BROWSER=1,
 * so a missing browser fails there instead of skipping.
 */
export function browserMissing (): string | undefined {
  if (existsSync(CHROMIUM)) return undefined
  if (process.env.REALTIME_REQUIRE_BROWSER === '1') throw new Error(`${CHROMIUM} is missing; .ci/run installs Debian's chromium`)
  return `no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)`
}

/**
 * A browser test file's own time limit (ms), for `t.setTimeout`: a Chromium
 * launch (and a demo process or two nodes) per test outruns .taprc's 60 s
 * per file, sized for the socket tests, on a busy 2-core CI machine.
 */
export const BROWSER_FILE_TIMEOUT_MS = 180_000

/**
 * Headless Debian Chromium, closed at teardown; Playwright gives every launch
 * a fresh, temporary profile. The flags keep it off the network: this machine
 * refuses outside connections, and Chromium's background services would
 * retry them at every start.
 */
export async function launchBrowser (t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'
    ]
  })
  t.teardown(async () => await browser.close())
  return browser
}
