export interface OriginPolicy {
  allowedOrigins: ReadonlyArray<string | RegExp>
  allowMissingOrigin: boolean
}

/**
 * Builds the Origin check of the handshake (the defence against cross-site
 * WebSocket hijacking). Strings match exactly, after normalizing case and a
 * trailing slash; `'*'` allows any real origin; a RegExp is tested against the
 * whole header value. The opaque origin `null` is refused unless a RegExp or
 * exact entry names it — `'*'` does not cover it.
 */
export function createOriginCheck ({ allowedOrigins, allowMissingOrigin }: OriginPolicy) {
  const exact = new Set<string>()
  const patterns: RegExp[] = []
  let any = false
  for (const entry of allowedOrigins) {
    if (entry instanceof RegExp) patterns.push(entry)
    else if (entry === '*') any = true
    else exact.add(normalize(entry))
  }

  return function isOriginAllowed (origin: string | undefined): boolean {
    if (origin === undefined || origin === '') return allowMissingOrigin
    const normalized = normalize(origin)
    if (exact.has(normalized)) return true
    if (any && normalized !== 'null') return true
    // Anchor user patterns so /app\.example\.com/ cannot match app.example.com.evil.test.
    return patterns.some((pattern) => wholeMatch(pattern, origin))
  }
}

function normalize (origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, '')
}

function wholeMatch (pattern: RegExp, origin: string): boolean {
  pattern.lastIndex = 0
  const match = pattern.exec(origin)
  return match !== null && match.index === 0 && match[0].length === origin.length
}
