import t from 'tap'
import { writeFile } from 'node:fs/promises'
import type { Page } from 'playwright-core'
import { BROWSER_FILE_TIMEOUT_MS, browserMissing, launchBrowser } from '../helpers/browser.js'
import { closed } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { ADMIN_TOKEN, openClient } from '../helpers/http.js'

// The operator console (`diagnostics.console`) in headless Chromium, on two
// nodes of one Redis: the page is served by node-0 and lists node-1's sockets.
// One browser and one page for every step, in order, as an operator would go.
const missing = browserMissing()
if (missing !== undefined) t.skip(`browser tests: ${missing}`, () => {})
t.setTimeout(BROWSER_FILE_TIMEOUT_MS)

const WAIT = { timeout: 15_000 }
const HOSTILE_AGENT = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">Evil/1.0'
// `CONSOLE_SCREENSHOT=docs/console.png npx tap test/browser/console.test.ts` refreshes README's picture.
const SCREENSHOT = process.env.CONSOLE_SCREENSHOT

/** The user ids of the rows the connections table shows. */
const listedUsers = async (page: Page): Promise<string[]> =>
  await page.$$eval('#connections tbody tr', (rows) => rows.map((row) => row.getAttribute('data-user') ?? ''))

async function search (page: Page, userId: string, nodeId = ''): Promise<void> {
  await page.fill('#search-user', userId)
  await page.fill('#search-node', nodeId)
  await page.click('#search')
}

if (missing === undefined) {
  t.test('the operator console, step by step', async (t) => {
    const [node0, node1] = await startNodes(t, 2, {
      history: { size: 16, ttlSeconds: 60 },
      heartbeat: { intervalMs: 500 },
      diagnostics: { adminTokens: [ADMIN_TOKEN], console: true }
    })
    const alice = await openClient(t, node0, node1, 'alice', [], { 'user-agent': HOSTILE_AGENT })
    const bob = await openClient(t, node0, node0, 'bob', ['notification.events', 'payment_order.events'], { 'user-agent': 'okhttp/4.12' })
    const carol = await openClient(t, node0, node1, 'carol', [], { 'user-agent': 'Mobile Safari' })
    // bob processed a payment event: with history on, the console shows his position.
    await node1.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-7' }, { userId: 'bob' })
    const [payment] = (await bob.inbox.until(3)).slice(2)
    bob.socket.send(JSON.stringify({ event: 'ack', channel: 'payment_order.events', id: payment.id }))

    const browser = await launchBrowser(t)
    const page = await browser.newPage({ viewport: { width: 1500, height: 900 } })
    const external: string[] = []
    page.on('request', (request) => { if (!request.url().startsWith(node0.httpBase)) external.push(request.url()) })
    const cspViolations: string[] = []
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text()) })
    await page.goto(`${node0.httpBase}/api/v1/ws/console`)

    t.test('a customer\'s token is refused: nothing is shown', async (t) => {
      await page.fill('#token', await node0.app.realtime.tokens.issue('mallory', { ttlSeconds: 60 }))
      await page.click('#sign-in')
      await page.waitForSelector('#status.refused', WAIT)
      t.match(await page.textContent('#status'), /^Refused: 403 Forbidden\./)
      t.equal(await page.isHidden('#main'), true)
      t.equal(await page.inputValue('#token'), '', 'the field does not keep the token')
    })

    t.test('the operator token loads it, and it lists a connection on the other node', async (t) => {
      await page.fill('#token', ADMIN_TOKEN)
      await page.click('#sign-in')
      await page.waitForSelector('#status.ok', WAIT)
      await page.waitForSelector('#connections tr[data-user="alice"][data-node="node-1"]', WAIT)
      t.strictSame((await listedUsers(page)).sort(), ['alice', 'bob', 'carol'])
      t.equal(await page.textContent('#users-count'), '3')
      t.equal(await page.inputValue('#token'), '')
      t.notOk((await page.content()).includes(ADMIN_TOKEN), 'the token is nowhere in the page')
      t.equal(page.url(), `${node0.httpBase}/api/v1/ws/console`, 'nor in its URL')
      await page.waitForSelector('#counters tr[data-node="node-0"]', WAIT)
      t.equal(await page.textContent('#counters tr[data-node="node-0"] td[data-field="connections"]'), '1')
    })

    t.test('a user agent with markup is shown as text, and nothing in it runs', async (t) => {
      const cell = '#connections tr[data-user="alice"] td[data-field="user-agent"]'
      t.equal(await page.textContent(cell), HOSTILE_AGENT)
      t.equal(await page.$$eval(`${cell} *`, (nodes) => nodes.length), 0, 'no element was made of it')
      t.equal(await page.evaluate('window.pwned'), undefined)
    })

    t.test('a search finds a user, and shows what it was sent and acked', async (t) => {
      await search(page, 'bob')
      await waitFor(async () => String(await listedUsers(page)) === 'bob', 'only bob listed')
      t.equal(await page.textContent('#count'), '1')
      const row = '#connections tr[data-user="bob"]'
      t.equal(await page.textContent(`${row} td[data-field="subscriptions"]`), 'settings, notification.events, payment_order.events')
      t.equal(await page.textContent(`${row} td[data-field="node"]`), 'node-0')
      // The ack reaches the listing with the node's next presence refresh (every heartbeat).
      await waitFor(async () => {
        await search(page, 'bob')
        return await page.textContent(`${row} td[data-field="acked"]`) === `payment_order.events: ${String(payment.id)}`
      }, 'bob\'s ack in the listing')
      await search(page, '', 'node-1')
      await waitFor(async () => String((await listedUsers(page)).sort()) === 'alice,carol', 'node-1\'s users only')
    })

    t.test('a test event from the console reaches the user', async (t) => {
      await search(page, 'bob')
      await page.waitForSelector('#connections tr[data-user="bob"]', WAIT)
      const before = bob.inbox.messages.length
      await page.click('#connections tr[data-user="bob"] button[data-action="test"]')
      await page.waitForSelector('#confirm[open]', WAIT)
      t.equal(await page.textContent('#confirm-text'), 'Send REALTIME_TEST on notification.events to user bob?')
      await page.click('#confirm-yes')
      const [event] = (await bob.inbox.until(before + 1)).slice(before)
      t.strictSame({ channel: event.channel, event: event.event, data: event.data }, { channel: 'notification.events', event: 'REALTIME_TEST', data: { test: true } })
      await page.waitForSelector('#action-log li[data-kind="done"]', WAIT)
    })

    t.test('force logout from the console closes that user\'s socket with 4502, logged with the operator', async (t) => {
      await search(page, 'carol')
      await page.waitForSelector('#connections tr[data-user="carol"]', WAIT)
      const carolClosed = closed(carol.socket)
      await page.click('#connections tr[data-user="carol"] button[data-action="force-logout"]')
      await page.waitForSelector('#confirm[open]', WAIT)
      t.match(await page.textContent('#confirm-text'), /^Force user carol to log out\?/)
      await page.click('#confirm-yes')
      t.equal((await carolClosed).code, 4502)
      await page.waitForSelector('#action-log li[data-kind="done"]:has-text("force logout of carol")', WAIT)
      const logged = node0.logs.map((line) => JSON.parse(line)).filter((line) => line.msg === 'fastify-realtime: operator action')
      t.strictSame(logged.map((line) => [line.action, line.user_id]), [['publish', 'bob'], ['force-logout', 'carol']])
      t.ok(logged.every((line) => /^admin-token:[0-9a-f]{8}$/.test(line.operator)), 'named by the token\'s digest prefix')
      t.notOk(node0.logs.some((line) => line.includes(ADMIN_TOKEN)), 'never the token itself')
    })

    t.test('a cancelled action does nothing', async (t) => {
      await search(page, '')
      await page.waitForSelector('#connections tr[data-user="alice"]', WAIT)
      await page.click('#connections tr[data-user="alice"] button[data-action="disconnect"]')
      await page.waitForSelector('#confirm[open]', WAIT)
      t.equal(await page.textContent('#confirm-text'), 'Disconnect every socket of user alice with code 4000?')
      await page.click('#confirm-no')
      await page.waitForSelector('#confirm', { state: 'hidden', ...WAIT })
      t.equal(alice.socket.readyState, alice.socket.OPEN)
    })

    t.test('nothing came from elsewhere and the CSP blocked nothing; the screenshot', async (t) => {
      await waitFor(async () => (await listedUsers(page)).length === 2, 'alice and bob listed')
      t.strictSame(external, [])
      t.strictSame(cspViolations, [])
      const png = await page.screenshot({ fullPage: true })
      t.equal(png.subarray(1, 4).toString(), 'PNG')
      if (SCREENSHOT !== undefined) await writeFile(SCREENSHOT, png)
    })

    t.test('revoking a pasted token closes its socket with 4501; the token is shown and logged nowhere', async (t) => {
      const aliceClosed = closed(alice.socket)
      await page.selectOption('#action-kind', 'revoke')
      t.equal(await page.isHidden('#action-user'), true, 'revoke takes a token, not a user')
      await page.fill('#action-token', alice.token)
      await page.click('#action-run')
      await page.waitForSelector('#confirm[open]', WAIT)
      t.equal(await page.textContent('#confirm-text'), `Revoke the pasted token (${alice.token.length} characters)? Its sockets close with 4501.`)
      await page.click('#confirm-yes')
      t.equal((await aliceClosed).code, 4501)
      await page.waitForSelector('#action-log li[data-kind="done"]:has-text("token revoked")', WAIT)
      t.equal(await page.inputValue('#action-token'), '')
      t.notOk((await page.content()).includes(alice.token), 'not in the page')
      t.notOk([...node0.logs, ...node1.logs].some((line) => line.includes(alice.token)), 'not in any log')
    })
  })
}
