// The operator console (served by fastify-realtime with `diagnostics.console: true`).
// Everything it shows comes from the operator routes and is written with
// textContent: a user agent or an event name with markup in it stays text.
// The token lives in this script's memory only: never in the URL, storage or the page.
'use strict'

const config = JSON.parse(document.getElementById('config').textContent)
const $ = (id) => document.getElementById(id)
const PAGE_SIZE = 50

let token = ''
let signedIn = false
let cursors = [null] // the cursor of each page up to the current one
let nextCursor = null
let listing = 0 // the latest connections request: an older answer arriving late is dropped
let timer
const samples = new Map() // node id -> { at, values } of its last scrape

/** A request to a route below the prefix, with the operator's credential in a header. */
async function api (path, { method = 'GET', body } = {}) {
  const headers = {}
  if (token !== '') headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(config.base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store'
  })
  const text = await response.text()
  let json = null
  try { json = JSON.parse(text) } catch {}
  return { status: response.status, ok: response.ok, headers: response.headers, text, json }
}

/** An element with text content (never markup) and optional attributes. */
function element (tag, text, attributes = {}) {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = String(text)
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value)
  return node
}

function setStatus (kind, text) {
  const status = $('status')
  status.className = kind
  status.textContent = text
}

/** What an error answer says, in a line. */
const describe = (result) => `${result.status} ${result.json?.message ?? (result.text.slice(0, 120) || 'no answer')}`

async function signIn () {
  token = $('token').value.trim()
  $('token').value = ''
  const probe = await api('/connections?limit=1')
  if (!probe.ok) {
    signOut()
    setStatus('refused', `Refused: ${describe(probe)}. The console needs an operator credential (an admin token or authorize), never a customer's token.`)
    return
  }
  signedIn = true
  setStatus('ok', 'Signed in as an operator')
  $('main').hidden = false
  $('sign-out').hidden = false
  cursors = [null]
  await refresh()
  clearInterval(timer)
  timer = setInterval(() => { refresh().catch(showFailure) }, config.refreshMs)
}

function signOut () {
  token = ''
  signedIn = false
  clearInterval(timer)
  samples.clear()
  $('main').hidden = true
  $('sign-out').hidden = true
  for (const id of ['connections', 'counters']) $(id).tBodies[0].replaceChildren()
  $('action-log').replaceChildren()
  setStatus('idle', 'Not signed in')
}

function showFailure (error) {
  setStatus('refused', `Request failed: ${error.message}`)
}

async function refresh () {
  if (!signedIn) return
  await Promise.all([loadCounters(), $('auto').checked ? loadConnections() : undefined, loadUserCount()])
}

async function loadUserCount () {
  const result = await api('/connected-users')
  $('users-count').textContent = result.ok ? String(result.json.data.count) : '?'
}

// Connections -----------------------------------------------------------------

async function loadConnections () {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) })
  const userId = $('search-user').value.trim()
  const nodeId = $('search-node').value.trim()
  if (userId !== '') query.set('user_id', userId)
  if (nodeId !== '') query.set('node_id', nodeId)
  const cursor = cursors.at(-1)
  if (cursor !== null) query.set('cursor', cursor)
  const request = ++listing
  const result = await api(`/connections?${query}`)
  if (request !== listing) return
  if (!result.ok) {
    setStatus('refused', `Connections: ${describe(result)}`)
    return
  }
  const { connections, count, next_cursor: next } = result.json.data
  nextCursor = next
  $('count').textContent = String(count)
  $('page').textContent = `page ${cursors.length}`
  $('prev').disabled = cursors.length === 1
  $('next').disabled = next === null
  $('connections').tBodies[0].replaceChildren(...connections.map(connectionRow))
}

const time = (iso) => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')

function connectionRow (entry) {
  const row = element('tr', undefined, { 'data-user': entry.user_id, 'data-node': entry.node_id, 'data-connection': entry.connection_id })
  const acked = entry.acked === undefined
    ? 'history off'
    : Object.entries(entry.acked).map(([channel, id]) => `${channel}: ${id}`).join('\n') || 'none yet'
  const cells = [
    entry.user_id, entry.node_id, entry.connection_id, time(entry.connected_at), entry.remote_address,
    entry.user_agent ?? '—', entry.origin ?? '—', entry.subscriptions.join(', '), time(entry.last_pong_at),
    `${entry.messages_in} / ${entry.messages_out}`, String(entry.buffered_bytes), acked
  ]
  const names = ['user', 'node', 'connection', 'connected-at', 'address', 'user-agent', 'origin', 'subscriptions', 'last-pong', 'messages', 'buffered', 'acked']
  cells.forEach((text, index) => row.append(element('td', text, { 'data-field': names[index] })))
  const actions = element('td', undefined, { 'data-field': 'actions' })
  for (const [kind, label] of [['test', 'Test event'], ['force-logout', 'Force logout'], ['disconnect', 'Disconnect']]) {
    const button = element('button', label, { type: 'button', 'data-action': kind })
    button.addEventListener('click', () => prepareAction(kind, entry.user_id))
    actions.append(button)
  }
  row.append(actions)
  return row
}

// Live counters ------------------------------------------------------------------

/** Prometheus text → the samples: `{ name, labels, value }` each. */
function parseMetrics (text) {
  const values = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) continue
    const labels = {}
    for (const [, name, value] of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[name] = value
    values.push({ name: match[1], labels, value: Number(match[4]) })
  }
  return values
}

const sum = (values, name, filter = () => true) =>
  values.filter((sample) => sample.name === name && filter(sample.labels)).reduce((total, sample) => total + sample.value, 0)

async function loadCounters () {
  const result = await api('/metrics')
  if (!result.ok) {
    setStatus('refused', `Metrics: ${describe(result)}`)
    return
  }
  const node = result.headers.get('x-realtime-node') ?? 'this node'
  const values = parseMetrics(result.text)
  const now = Date.now()
  const previous = samples.get(node)
  // One step back is all `rate` reads: kept without its own `previous`, so a tab left open holds two answers per node, not every one.
  samples.set(node, { at: now, values, previous: previous === undefined ? undefined : { at: previous.at, values: previous.values } })
  // A node not heard from in a minute is gone (or not behind this URL any more).
  for (const [id, sample] of samples) if (now - sample.at > 60_000) samples.delete(id)
  $('counters').tBodies[0].replaceChildren(...[...samples].sort(([a], [b]) => a < b ? -1 : 1).map(([id, sample]) => counterRow(id, sample)))
}

function rate (sample, name) {
  const before = sample.previous
  if (before === undefined) return '…'
  const seconds = (sample.at - before.at) / 1000
  const delta = sum(sample.values, name) - sum(before.values, name)
  return seconds > 0 && delta >= 0 ? (delta / seconds).toFixed(1) : '…'
}

function counterRow (node, sample) {
  const { values } = sample
  const recovered = sum(values, 'realtime_recoveries_total', (labels) => labels.result === 'recovered')
  const missed = values.filter((entry) => entry.name === 'realtime_recoveries_total' && entry.labels.result !== 'recovered' && entry.value > 0)
  const recoveries = [`recovered ${recovered}`, ...missed.map((entry) => `not recovered (${entry.labels.reason}) ${entry.value}`)].join('\n')
  const closes = values
    .filter((entry) => entry.name === 'realtime_closes_total' && entry.value > 0)
    .map((entry) => `${config.closeCodes[entry.labels.code] ?? 'other'} (${entry.labels.code}): ${entry.value}`)
    .join('\n') || 'none'
  const cells = [
    node,
    sum(values, 'realtime_connections'),
    rate(sample, 'realtime_publishes_total'),
    rate(sample, 'realtime_messages_out_total'),
    sum(values, 'realtime_slow_consumer_cuts_total'),
    sum(values, 'realtime_redis_reconnects_total'),
    sum(values, 'realtime_subscriber_replacements_total'),
    recoveries,
    sum(values, 'realtime_ack_timeouts_total'),
    sum(values, 'realtime_handshakes_refused_total', (labels) => labels.status === '503'),
    closes
  ]
  const names = ['node', 'connections', 'publishes', 'deliveries', 'slow-consumer-cuts', 'redis-reconnects', 'subscriber-replaced', 'recoveries', 'ack-timeouts', 'handshake-503', 'closes']
  const row = element('tr', undefined, { 'data-node': node })
  cells.forEach((text, index) => row.append(element('td', text, { 'data-field': names[index] })))
  return row
}

// Actions ------------------------------------------------------------------------

function showFieldsFor (kind) {
  for (const label of document.querySelectorAll('#act label[data-for]')) label.hidden = !label.dataset.for.split(' ').includes(kind)
}

function prepareAction (kind, userId) {
  $('action-kind').value = kind
  $('action-user').value = userId
  showFieldsFor(kind)
  runAction()
}

/** The request an action makes, and the sentence the operator confirms; a string is a mistake to show instead. */
function buildAction () {
  const kind = $('action-kind').value
  const userId = $('action-user').value.trim()
  if (kind !== 'revoke' && userId === '') return 'Give a user id'
  if (kind === 'test') {
    let data
    try { data = JSON.parse($('action-data').value) } catch { return 'The data is not JSON' }
    const channel = $('action-channel').value.trim()
    const event = $('action-event').value.trim()
    return {
      path: '/publish',
      body: { channel, event, data, user_id: userId },
      summary: `Send ${event} on ${channel} to user ${userId}?`,
      done: `test event ${event} on ${channel} to ${userId}`
    }
  }
  if (kind === 'force-logout') {
    return { path: '/force-logout', body: { user_id: userId }, summary: `Force user ${userId} to log out? Every socket of the user closes with 4502 and the app signs out.`, done: `force logout of ${userId}` }
  }
  if (kind === 'disconnect') {
    const code = Number($('action-code').value)
    const reason = $('action-reason').value
    return { path: '/disconnect', body: { user_id: userId, code, reason }, summary: `Disconnect every socket of user ${userId} with code ${code}?`, done: `disconnect of ${userId} with ${code}` }
  }
  const revoked = $('action-token').value.trim()
  if (revoked === '') return 'Paste the token to revoke'
  // The token is sent once and never shown: the confirmation names it by its length only.
  return { path: '/revoke', body: { token: revoked }, summary: `Revoke the pasted token (${revoked.length} characters)? Its sockets close with 4501.`, done: 'token revoked' }
}

function runAction () {
  const action = buildAction()
  if (typeof action === 'string') {
    logAction('mistake', action)
    return
  }
  $('confirm-text').textContent = action.summary
  const dialog = $('confirm')
  const decide = async (confirmed) => {
    $('confirm-yes').onclick = null
    $('confirm-no').onclick = null
    dialog.close()
    if (!confirmed) return
    if (action.path === '/revoke') $('action-token').value = ''
    const result = await api(action.path, { method: 'POST', body: action.body })
    logAction(result.ok ? 'done' : 'failed', result.ok ? action.done : `${action.done}: ${describe(result)}`)
    await refresh()
  }
  $('confirm-yes').onclick = () => { decide(true).catch(showFailure) }
  $('confirm-no').onclick = () => { decide(false).catch(showFailure) }
  dialog.showModal()
}

function logAction (kind, text) {
  const line = element('li', `${new Date().toLocaleTimeString()}  ${text}`, { 'data-kind': kind })
  $('action-log').prepend(line)
}

// Wiring ---------------------------------------------------------------------------

$('refresh-seconds').textContent = String(config.refreshMs / 1000)
$('action-channel').value = config.testEvent.channel
$('action-event').value = config.testEvent.event
showFieldsFor($('action-kind').value)
$('action-kind').addEventListener('change', () => showFieldsFor($('action-kind').value))
$('action-run').addEventListener('click', runAction)
$('sign-in').addEventListener('click', () => { signIn().catch(showFailure) })
$('token').addEventListener('keydown', (event) => { if (event.key === 'Enter') signIn().catch(showFailure) })
$('sign-out').addEventListener('click', signOut)
$('search').addEventListener('click', () => { cursors = [null]; loadConnections().catch(showFailure) })
for (const id of ['search-user', 'search-node']) {
  $(id).addEventListener('keydown', (event) => { if (event.key === 'Enter') $('search').click() })
}
$('next').addEventListener('click', () => {
  if (nextCursor === null) return
  cursors.push(nextCursor)
  loadConnections().catch(showFailure)
})
$('prev').addEventListener('click', () => {
  if (cursors.length > 1) cursors.pop()
  loadConnections().catch(showFailure)
})
