// Shared by the diagnostics tests (not a test file itself: tap runs *.test.ts only).
import type { Test } from 'tap'
import type WebSocket from 'ws'
import type { TestApp } from './app.js'
import { connect } from './client.js'
import { Inbox } from './messages.js'

export const PREFIX = '/api/v1/ws'
export const TRACE_ID = /^[0-9a-f]{16}$/
export const ENVELOPE_KEYS = ['status_code', 'message', 'trace_id', 'data']
export const JSON_TYPE = 'application/json; charset=utf-8'
/** An operator credential for the diagnostic routes: pass `diagnostics: { adminTokens: [ADMIN_TOKEN] }`. */
export const ADMIN_TOKEN = 'ops-admin-token-' + 'a'.repeat(16)

export interface HttpResult {
  status: number
  headers: Headers
  /** The raw body. */
  text: string
  /** The body parsed as JSON, or the raw text when it is not JSON. */
  body: any
}

/** One HTTP request with fetch; the answer's body is read whole. `json`: a request body, sent as JSON. */
export async function http (url: string, headers: Record<string, string> = {}, method = 'GET', json?: unknown): Promise<HttpResult> {
  const response = await fetch(url, json === undefined
    ? { method, headers }
    : { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(json) })
  const text = await response.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.status, headers: response.headers, text, body }
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** Asserts an error answer in the plugin's envelope, exactly. */
export function assertError (t: Test, result: HttpResult, status: number, message: string): void {
  t.equal(result.status, status, `HTTP ${status} ${message}`)
  t.equal(result.headers.get('content-type'), JSON_TYPE)
  t.strictSame(Object.keys(result.body), ENVELOPE_KEYS)
  t.equal(result.body.status_code, status)
  t.equal(result.body.message, message)
  t.equal(result.body.data, null)
  t.match(result.body.trace_id, TRACE_ID)
}

/** Asserts a success answer in the envelope and returns its `data`. */
export function assertOk (t: Test, result: HttpResult): any {
  t.equal(result.status, 200, `HTTP 200 (got ${result.text})`)
  t.equal(result.headers.get('content-type'), JSON_TYPE)
  t.strictSame(Object.keys(result.body), ENVELOPE_KEYS)
  t.equal(result.body.status_code, 200)
  t.equal(result.body.message, 'OK')
  t.match(result.body.trace_id, TRACE_ID)
  return result.body.data
}

export interface Client {
  socket: WebSocket
  inbox: Inbox
  connectionId: string
  token: string
}

/**
 * Issues a token for `userId` on `issuer`, opens a socket on `node` and
 * subscribes it to `channels` (waiting for each `subscribed`). The socket is
 * terminated at teardown, before any app registered earlier is closed.
 */
export async function openClient (t: Test, issuer: TestApp, node: TestApp, userId: string | number, channels: string[] = [], headers: Record<string, string> = {}): Promise<Client> {
  const token = await issuer.app.realtime.tokens.issue(userId, { ttlSeconds: 300 })
  const { socket, first } = await connect(`${node.wsBase}${PREFIX}?token=${token}`, { headers })
  t.teardown(() => socket.terminate())
  const inbox = new Inbox(socket)
  for (const [index, channel] of channels.entries()) {
    socket.send(JSON.stringify({ event: 'subscribe', channel }))
    const replies = await inbox.until(index + 1)
    if (replies[index].event !== 'subscribed') throw new Error(`subscribe to ${channel} failed: ${JSON.stringify(replies[index])}`)
  }
  return { socket, inbox, connectionId: (first.data as { connection_id: string }).connection_id, token }
}
