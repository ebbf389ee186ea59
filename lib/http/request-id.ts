import type { IncomingMessage } from 'node:http'
import { randomHex } from '../random-ids.js'

// A forwarded id is kept only when it cannot forge log lines or collide trivially.
const FORWARDED_ID = /^[\w.:-]{16,128}$/

/**
 * Request ids for the plugin's routes: an incoming `x-request-id` from a proxy
 * is honoured, otherwise 64 random bits as 16 hex characters — unique across
 * nodes, unlike Fastify's per-process counter.
 */
export function genTraceId (raw: IncomingMessage): string {
  const forwarded = raw.headers['x-request-id']
  if (typeof forwarded === 'string' && FORWARDED_ID.test(forwarded)) return forwarded
  return randomHex(8)
}
