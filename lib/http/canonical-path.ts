/**
 * Deciding whether a request target belongs to the plugin's prefix the way the
 * most lenient router or proxy in the chain could read it, so that no spelling
 * of the prefix escapes token redaction.
 */

/** Percent-decoding rounds: enough for double and triple encoding, bounded so a crafted target costs little. */
const MAX_DECODE_ROUNDS = 4

/** `scheme://authority` of an absolute-form target, read as leniently as WHATWG URL does (`http:/h`, `http:\\h`, `host:port`). */
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:[/\\]*[^/\\?#]*/i
const PERCENT_ESCAPE = /%([0-9a-f]{2})/gi
/** `;name=value` path parameters, which servlet-style routers drop from every segment. */
const SEGMENT_PARAMETERS = /;[^/]*/g
const REPEATED_SLASHES = /\/{2,}/g
const SINGLE_DOT_SEGMENT = /\/\.(?=\/|$)/g
const DOUBLE_DOT_SEGMENT = /\/\.\.(?:\/|$)/
/** A path without any of these reads the same under every normalization below, apart from case. */
const NEEDS_NORMALIZING = /[%\\;]|\/[/.]/

const SLASH = 0x2f
const BACKSLASH = 0x5c

/** The target without an absolute-form `scheme://authority`; other targets unchanged. */
export function stripAbsoluteForm (target: string): string {
  const first = target.charCodeAt(0)
  if (first === SLASH || first === BACKSLASH) return target
  const authority = ABSOLUTE_FORM.exec(target)
  return authority === null ? target : target.slice(authority[0].length)
}

/** Where the path of `target` ends: at its first `?` or `#`. */
export function pathEnd (target: string): number {
  for (let i = 0; i < target.length; i++) {
    const code = target.charCodeAt(i)
    if (code === 0x3f || code === 0x23) return i
  }
  return target.length
}

/** `%XX` as the byte it encodes (one Latin-1 character), malformed escapes left as they are. */
function percentDecode (text: string): string {
  return text.replace(PERCENT_ESCAPE, (_escape, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}

/**
 * The path of `target` with every lenient reading applied at once: no
 * absolute-form authority, percent-decoded until stable, `\` as `/`, cut at a
 * `?` or `#` (raw or decoded), segment parameters dropped, repeated slashes
 * collapsed, `.` segments removed, lower-cased. `..` segments are kept: where
 * they lead depends on the order a reader applies the rest in.
 */
export function canonicalPath (target: string): string {
  let path = stripAbsoluteForm(target)
  path = path.slice(0, pathEnd(path))
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    const decoded = percentDecode(path)
    if (decoded === path) break
    path = decoded
  }
  path = path.replaceAll('\\', '/')
  path = path.slice(0, pathEnd(path))
  path = ('/' + path.replace(SEGMENT_PARAMETERS, '')).replace(REPEATED_SLASHES, '/').replace(SINGLE_DOT_SEGMENT, '')
  return path.toLowerCase()
}

/**
 * True for every target some reader could route below `prefix`: its path
 * starts with the prefix (a plain string prefix, so typos such as
 * `/api/v1/wsx` count) once read as `canonicalPath` does. When the path holds a
 * `..` segment, readers that resolve it before or after decoding, or that keep
 * empty segments, end up in different places; then any occurrence of the
 * prefix counts.
 */
export function createPrefixMatcher (prefix: string): (target: string) => boolean {
  // Percent-decoding yields bytes: compare the prefix as the bytes it is sent as.
  const canonicalPrefix = canonicalPath(Buffer.from(prefix).toString('latin1'))
  return function isUnderPrefix (target: string): boolean {
    const end = pathEnd(target)
    // The common case, a plain `/path`: no normalization can change it but case.
    if (target.charCodeAt(0) === SLASH && !NEEDS_NORMALIZING.test(target.slice(0, end))) {
      return end >= canonicalPrefix.length && target.slice(0, canonicalPrefix.length).toLowerCase() === canonicalPrefix
    }
    const path = canonicalPath(target)
    return path.startsWith(canonicalPrefix) || (DOUBLE_DOT_SEGMENT.test(path) && path.includes(canonicalPrefix))
  }
}
