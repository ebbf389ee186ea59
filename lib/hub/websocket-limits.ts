/**
 * What the WebSocket server (`ws`) may hold for a socket whose peer sends
 * without finishing, or stops answering. `ws` keeps every fragment of an
 * unfinished message (about 100 bytes of heap each, whatever its size) and
 * every TCP read of an unfinished frame, and waits 30 s for a close handshake
 * by default; with its defaults one token could make a node hold megabytes
 * per socket and keep them well after the socket was replaced. With these, a
 * socket holds at most `maxPayload` bytes of message plus
 * `maxFragments + MAX_BUFFERED_CHUNKS` small objects, and a closed one is gone
 * after `closeTimeout`.
 */

/**
 * TCP reads one frame may arrive in before the socket is refused (1008). A
 * real link delivers hundreds of bytes per read; only a peer dribbling bytes
 * one at a time gets near this.
 */
export const MAX_BUFFERED_CHUNKS = 256

export interface SocketLimits {
  maxPayloadBytes: number
  maxFragments: number
  closeTimeoutMs: number
}

export interface WebSocketServerLimits {
  maxPayload: number
  maxFragments: number
  maxBufferedChunks: number
  closeTimeout: number
}

/** The `ws` server options that enforce `limits`. */
export function websocketServerLimits (limits: SocketLimits): WebSocketServerLimits {
  return {
    maxPayload: limits.maxPayloadBytes,
    maxFragments: limits.maxFragments,
    maxBufferedChunks: MAX_BUFFERED_CHUNKS,
    closeTimeout: limits.closeTimeoutMs
  }
}

/**
 * The options of a `ws` server the application configured itself that are
 * looser than the plugin's limits (0 means unlimited to `ws`).
 */
export function looserLimits (serverOptions: Partial<WebSocketServerLimits>, limits: SocketLimits): string[] {
  const wanted = websocketServerLimits(limits)
  return (Object.keys(wanted) as Array<keyof WebSocketServerLimits>).filter((name) => {
    const actual = serverOptions[name]
    return actual === undefined || actual === 0 || actual > wanted[name]
  })
}
