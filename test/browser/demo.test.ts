import t from 'tap'
import type { Page } from 'playwright-core'
import { BROWSER_FILE_TIMEOUT_MS, browserMissing, launchBrowser } from '../helpers/browser.js'
import { ensureBuilt, startDemo } from '../helpers/demo.js'

// `npm run demo` in headless Chromium: the page a newcomer sees, on the client SDK.
const missing = browserMissing()
if (missing !== undefined) t.skip(`browser tests: ${missing}`, () => {})
t.setTimeout(BROWSER_FILE_TIMEOUT_MS)

const WAIT = { timeout: 15_000 }

async function signIn (page: Page, base: string, userId: string): Promise<void> {
  await page.goto(`${base}/`)
  await page.fill('#user', userId)
  await page.click('#connect')
  await page.waitForSelector('#state.connected', WAIT)
}

async function publish (base: string, body: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${base}/demo/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`publish failed: ${response.status}`)
}

/** An expression for waitForFunction, evaluated in the page: at least `count` event lines that contain `text`. */
const linesAtLeast = (text: string, count: number): string =>
  `[...document.querySelectorAll('#log div[data-kind="event"]')].filter((line) => line.textContent.includes(${JSON.stringify(text)})).length >= ${count}`

const eventLines = async (page: Page, text: string): Promise<string[]> =>
  await page.$$eval('#log div[data-kind="event"]', (lines, wanted) => lines.map((line) => line.textContent ?? '').filter((line) => line.includes(wanted)), text)

t.test('the package exports its SDK at fastify-realtime/client, as built', async (t) => {
  ensureBuilt()
  // A variable: the type checker need not find dist/ (built by `npm ci`, or just now).
  const specifier = 'fastify-realtime/client'
  const sdk = await import(specifier)
  t.equal(typeof sdk.createClient, 'function')
})

if (missing === undefined) {
  t.test('the demo page connects, and an event published to the user shows in its log', async (t) => {
    const base = await startDemo(t)
    const browser = await launchBrowser(t)
    const page = await browser.newPage()
    await signIn(page, base, 'alice')
    await page.click('button[data-kind="notification"]')
    await page.waitForSelector('#log div[data-kind="event"]:has-text("NOTIFICATION_UPDATE")', WAIT)
    t.match((await eventLines(page, 'NOTIFICATION_UPDATE'))[0], /notification\.events {2}NOTIFICATION_UPDATE {2}\{"mobile_user_id":"alice","unread_count":1,/)
  })

  t.test('a second page signed in as the same user takes over: the first shows 4500 and stays closed', async (t) => {
    const base = await startDemo(t)
    const browser = await launchBrowser(t)
    const first = await browser.newPage()
    await signIn(first, base, 'bob')
    const second = await browser.newPage()
    await signIn(second, base, 'bob')
    await first.waitForSelector('#state.closed', WAIT)
    t.match(await first.textContent('#detail'), /^code 4500 \(Replaced by a newer connection\)/)
    t.equal(await second.textContent('#state'), 'connected')
  })

  t.test('events published while the network is cut come back on reconnect, recovered', async (t) => {
    const base = await startDemo(t)
    const browser = await launchBrowser(t)
    const page = await browser.newPage()
    await signIn(page, base, 'carol')
    await page.click('#cut')
    await page.waitForSelector('#state.disconnected', WAIT)
    await publish(base, { kind: 'payment', user_id: 'carol', count: 3 })
    await page.waitForSelector('#recovery:has-text("payment_order.events: recovered 3")', { timeout: 30_000 })
    await page.waitForSelector('#state.connected', WAIT)
    // The recovery shows with `connected`; the replayed events follow it.
    await page.waitForFunction(linesAtLeast('PAYMENT_ORDER_UPDATED', 3), undefined, WAIT)
    t.equal((await eventLines(page, 'PAYMENT_ORDER_UPDATED')).length, 3, 'each missed event once')
  })

  t.test('a token about to expire is refreshed through getToken on the open socket', async (t) => {
    const base = await startDemo(t, { DEMO_TOKEN_TTL_SECONDS: '4' })
    const browser = await launchBrowser(t)
    const page = await browser.newPage()
    await signIn(page, base, 'dave')
    const connection = await page.textContent('#detail')
    // Evaluated in the page: the first token, then two refreshes before it would have expired.
    await page.waitForFunction('document.querySelectorAll(\'#log div[data-kind="token"]\').length >= 3', undefined, { timeout: 20_000 })
    t.equal(await page.textContent('#state'), 'connected', 'never disconnected: no 4005')
    t.equal(await page.textContent('#detail'), connection, 'the same connection all along')
    await page.click('input[data-channel="kyc.events"]')
    await page.waitForSelector('#log div[data-kind="reply"]:has-text("subscribed kyc.events")', WAIT)
    await page.click('button[data-kind="kyc"]')
    await page.waitForSelector('#log div[data-kind="event"]:has-text("KYC_STATUS_UPDATED")', WAIT)
    t.equal(await page.textContent('#detail'), connection, 'subscribed on the refreshed socket')
  })

  t.test('two users: a settings update to everyone shows on both; an unticked channel shows nothing; a forced logout to everyone closes both with 4502', async (t) => {
    const base = await startDemo(t)
    const browser = await launchBrowser(t)
    // A context each: its own storage, as two people's browsers.
    const erin = await (await browser.newContext()).newPage()
    const frank = await (await browser.newContext()).newPage()
    await signIn(erin, base, 'erin')
    await signIn(frank, base, 'frank')

    await erin.check('input[name="target"][value="all"]')
    await erin.click('button[data-kind="settings"]')
    for (const page of [erin, frank]) await page.waitForSelector('#log div[data-kind="event"]:has-text("settings  withdrawal_settings_updated")', WAIT)

    await erin.check('input[name="target"][value="me"]')
    await erin.uncheck('input[data-channel="notification.events"]')
    await erin.waitForSelector('#log div[data-kind="reply"]:has-text("unsubscribed notification.events")', WAIT)
    await erin.click('button[data-kind="notification"]')
    await erin.waitForSelector('#log div[data-kind="publish"]:has-text("published notification ×1")', WAIT)
    // Published after it, to the same socket: once it shows, the notification would have.
    await erin.click('button[data-kind="payment"]')
    await erin.waitForSelector('#log div[data-kind="event"]:has-text("PAYMENT_ORDER_UPDATED")', WAIT)
    t.strictSame(await eventLines(erin, 'NOTIFICATION_UPDATE'), [], 'no line for the unticked channel')

    await erin.check('input[name="target"][value="all"]')
    await erin.click('button[data-kind="force_logout"]')
    for (const page of [erin, frank]) {
      await page.waitForSelector('#state.closed', WAIT)
      t.equal(await page.textContent('#detail'), 'code 4502 (Forced logout)')
    }
  })
}
