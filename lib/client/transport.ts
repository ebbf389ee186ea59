import type { FetchLike } from './types.js'

/** The URL and subprotocols of one connect: the token in the query or in a subprotocol entry, and the positions to recover. */
export function connectRequest (
  base: string, token: string, recover: string, transport: 'query' | 'protocol', protocolPrefix: string, protocol: string
): { url: string, protocols: string[] | undefined, headers: Record<string, string> } {
  const params: string[] = []
  if (transport === 'query') params.push('token=' + encodeURIComponent(token))
  if (recover !== '') params.push('recover=' + encodeURIComponent(recover))
  const url = params.length === 0 ? base : base + (base.includes('?') ? '&' : '?') + params.join('&')
  // A fetch cannot send Sec-WebSocket-Protocol, so the GET that asks why a connect failed carries the token as a bearer header
  // (the server reads it with `tokens.authorizationHeader`; without it the GET gets 401 and the client asks getToken() again).
  return transport === 'query'
    ? { url, protocols: undefined, headers: {} }
    : { url, protocols: [protocol, protocolPrefix + token], headers: { authorization: 'Bearer ' + token } }
}

/** What the gate answered the plain GET of the WebSocket URL. */
export interface Refusal {
  status: number
  /** The error body's `message`, or empty. */
  reason: string
  /** From `Retry-After` (seconds), 0 without one. */
  retryAfterMs: number
}

/**
 * A browser sees close 1006 for every refusal before the upgrade; the same URL
 * fetched as a plain GET gets the gate's answer: 426 when the upgrade would have
 * passed, or its 401/403/429/503 (or 400) in the error shape. `undefined` when
 * the GET failed too (network down, CORS).
 */
export async function askWhy (fetch: FetchLike, url: string, headers: Record<string, string>, timeoutMs: number): Promise<Refusal | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const ask = async (): Promise<Refusal | undefined> => {
    const response = await fetch(url.replace(/^ws/i, 'http'), { headers })
    let reason = ''
    try {
      const body = await response.json() as { message?: unknown } | null
      if (typeof body?.message === 'string') reason = body.message
    } catch {}
    return { status: response.status, reason, retryAfterMs: (Number(response.headers.get('retry-after')) || 0) * 1000 }
  }
  // Not every runtime has AbortSignal.timeout: a GET that hangs is left behind, not awaited.
  const answer = await Promise.race([
    ask().catch(() => undefined),
    new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs) })
  ])
  clearTimeout(timer)
  return answer
}
