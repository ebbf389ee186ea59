/* global location */
// The demo page, on the client SDK (fastify-realtime/client, served from dist/client).
import { createClient } from '/sdk/index.js'

const CHANNELS = ['notification.events', 'payment_order.events', 'card.events', 'kyc.events']
const $ = (id) => document.getElementById(id)
let client
let offline = false
let current

/** Adds one line to the log; text only, so nothing a server sends is ever read as markup. */
function log (kind, text) {
  const line = document.createElement('div')
  line.dataset.kind = kind
  line.textContent = `${new Date().toLocaleTimeString()}  ${text}`
  $('log').prepend(line)
}

/**
 * The browser's WebSocket, with a switch to play a lost network: while
 * `offline`, connects go to a closed port and fail like they would without
 * a network (the SDK sees 1006 and retries with backoff).
 */
class DemoSocket extends WebSocket {
  constructor (url, protocols) {
    super(offline ? 'ws://127.0.0.1:9/' : url, protocols)
    if (!offline) current = this
  }
}

async function getToken () {
  const response = await fetch('/demo/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: $('user').value })
  })
  if (!response.ok) throw new Error(`login failed: ${response.status}`)
  const { token } = await response.json()
  log('token', 'got a token from /demo/login')
  return token
}

function connect () {
  client?.close()
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/ws`
  // The SDK asks the server why a connect failed with a GET: offline, that fails too, as it would without a network.
  const demoFetch = (url, init) => offline ? Promise.reject(new TypeError('Failed to fetch (network cut)')) : fetch(url, init)
  client = createClient({ url, getToken, WebSocket: DemoSocket, fetch: demoFetch, channels: checkedChannels() })
  client.onState(showState)
  for (const channel of ['settings', 'mobile.force.logout', ...CHANNELS]) {
    client.on(channel, (event) => log('event', `${event.channel}  ${event.event}  ${JSON.stringify(event.data)}  id=${event.id ?? '–'}`))
  }
  client.on('resync', ({ channel, reason }) => log('resync', `resync ${channel}: ${reason} (refetch its state over HTTP)`))
  $('connect').disabled = true
  $('disconnect').disabled = false
}

function showState (state) {
  $('state').textContent = state.state
  $('state').className = state.state
  const detail = state.state === 'disconnected' || state.state === 'closed'
    ? `code ${state.code}${state.reason ? ` (${state.reason})` : ''}${state.status ? `, HTTP ${state.status}` : ''}${state.delayMs !== undefined ? `, retrying in ${state.delayMs} ms` : ''}`
    : state.state === 'connected' ? `as user ${state.userId}, connection ${state.connectionId}` : ''
  $('detail').textContent = detail
  log('state', `${state.state} ${detail}`)
  if (state.state === 'connected' && state.recovery !== undefined) {
    const text = Object.entries(state.recovery)
      .map(([channel, outcome]) => outcome.recovered ? `${channel}: recovered ${outcome.replayed}` : `${channel}: not recovered (${outcome.reason})`)
      .join(', ')
    $('recovery').textContent = text || '–'
    log('recovery', `recovery: ${text}`)
  }
  if (state.state === 'closed') {
    $('connect').disabled = false
    $('disconnect').disabled = true
  }
}

function checkedChannels () {
  return CHANNELS.filter((channel) => document.querySelector(`input[data-channel="${channel}"]`).checked)
}

for (const channel of CHANNELS) {
  const label = document.createElement('label')
  const box = document.createElement('input')
  box.type = 'checkbox'
  box.dataset.channel = channel
  box.checked = channel !== 'kyc.events'
  box.addEventListener('change', () => {
    if (client === undefined) return
    const done = box.checked ? client.subscribe(channel) : client.unsubscribe(channel)
    done.then(() => log('reply', `${box.checked ? 'subscribed' : 'unsubscribed'} ${channel}`), (error) => log('error', `${channel}: ${error.code} ${error.message}`))
  })
  label.append(box, ` ${channel} `)
  $('channels').append(label)
}

$('connect').addEventListener('click', connect)
$('disconnect').addEventListener('click', () => { client?.close() })
$('cut').addEventListener('click', () => {
  offline = true
  log('network', 'network cut for 5 s')
  current?.close(4000, 'network cut (demo)')
  setTimeout(() => { offline = false; log('network', 'network back') }, 5000)
})
for (const button of document.querySelectorAll('button[data-kind]')) {
  button.addEventListener('click', async () => {
    const toMe = document.querySelector('input[name="target"]:checked').value === 'me'
    const body = { kind: button.dataset.kind, count: Number($('count').value) || 1, ...(toMe ? { user_id: $('user').value } : {}) }
    const response = await fetch('/demo/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const result = await response.json()
    log('publish', response.ok ? `published ${button.dataset.kind} ×${result.published}` : `publish refused: ${result.message}`)
  })
}
