import { readFile } from 'node:fs/promises'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { CloseCode } from '../constants.js'

/** The console's page and its two assets, kept beside the package (tsc copies no asset into dist/). */
const ASSETS = new URL('../../assets/console/', import.meta.url)

/**
 * Nothing but the plugin's own files, no inline script or style, no framing,
 * no form posts: a user agent or event name with markup in it can neither run
 * nor load anything, even if some rendering slipped.
 */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  // An operator's page: no proxy or browser cache keeps a copy.
  'cache-control': 'no-store'
}

/** What the page's script reads from its JSON data block: where the routes are, and what the numbers mean. */
export interface ConsoleConfig {
  /** The diagnostic routes' common path (the plugin's prefix). */
  base: string
  /** Close codes by meaning, from the one table of them (`CloseCode`), and the two that the WebSocket standard defines and the gateway never sends. */
  closeCodes: Record<string, string>
  /** The test event's default channel and event, as the `/test` route sends them. */
  testEvent: { channel: string, event: string }
  refreshMs: number
}

const REFRESH_MS = 5000

/** `SLOW_CONSUMER` → `slow consumer`: the names of `CloseCode` already say what each code means. */
function closeCodeMeanings (): Record<string, string> {
  const meanings: Record<string, string> = { 1000: 'normal closure', 1005: 'no status' }
  for (const [name, code] of Object.entries(CloseCode)) meanings[code] = name.toLowerCase().replaceAll('_', ' ')
  return meanings
}

/**
 * The operator console (`diagnostics.console`): one static page and its
 * script and style, the same bytes for everyone. The page holds no data and
 * no credential: its script asks the operator routes for everything, with the
 * token the operator types in (an `Authorization` header, never the URL), or
 * with whatever `authorize` reads (an SSO proxy's header or cookie), so it
 * shows and does exactly what that credential may through the API.
 */
export async function consoleRoutes (fastify: FastifyInstance, config: Omit<ConsoleConfig, 'closeCodes' | 'refreshMs'>): Promise<void> {
  const [template, script, style] = await Promise.all(['index.html', 'console.js', 'console.css'].map(async (name) => await readFile(new URL(name, ASSETS), 'utf8')))
  const page = renderPage(template, { ...config, closeCodes: closeCodeMeanings(), refreshMs: REFRESH_MS })
  const send = (reply: FastifyReply, type: string, body: string): FastifyReply => reply.headers(SECURITY_HEADERS).type(type).send(body)

  fastify.get('/console', async (_request, reply) => send(reply, 'text/html; charset=utf-8', page))
  fastify.get('/console/console.js', async (_request, reply) => send(reply, 'text/javascript; charset=utf-8', script))
  fastify.get('/console/console.css', async (_request, reply) => send(reply, 'text/css; charset=utf-8', style))
}

/** The page: the config in its JSON data block, the asset paths below `base`; neither can break out of where it stands. */
export function renderPage (template: string, config: ConsoleConfig): string {
  return template
    .replace('{{config}}', () => jsonForHtml(config))
    .replaceAll('{{base}}', () => escapeHtml(config.base))
}

/** JSON that cannot end the `<script type="application/json">` block it sits in, nor open a comment there. */
function jsonForHtml (value: unknown): string {
  return JSON.stringify(value).replaceAll('<', '\\u003c').replaceAll('>', '\\u003e').replaceAll('&', '\\u0026')
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character])
}
