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

const SLASH = 0x2f
const BACKSLASH = 0x5c
const PERCENT = 0x25
const SEMICOLON = 0x3b
const DOT = 0x2e
const QUESTION_MARK = 0x3f
const HASH = 0x23

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
    if (code === QUESTION_MARK || code === HASH) return i
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
 * they lead depends on the order a reader applies the rest in. With
 * `decodeFirst` the authority is taken off after decoding, as a reader that
 * decodes the whole target would (`http://h%2Fapi` has the path `/api` then).
 */
export function canonicalPath (target: string, decodeFirst = false): string {
  let path = target.slice(0, pathEnd(target))
  if (decodeFirst) path = decodeUntilStable(path)
  path = decodeUntilStable(stripAbsoluteForm(path)).replaceAll('\\', '/')
  path = path.slice(0, pathEnd(path))
  path = ('/' + path.replace(SEGMENT_PARAMETERS, '')).replace(REPEATED_SLASHES, '/').replace(SINGLE_DOT_SEGMENT, '')
  return path.toLowerCase()
}

function decodeUntilStable (text: string): string {
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    const decoded = percentDecode(text)
    if (decoded === text) break
    text = decoded
  }
  return text
}

/**
 * True for every target some reader could route below `prefix`: its path
 * starts with the prefix (a plain string prefix, so typos such as
 * `/api/v1/wsx` count) once read as `canonicalPath` does, or could once its
 * `..` segments are resolved (see `couldResolveUnder`).
 */
export function createPrefixMatcher (prefix: string): (target: string) => boolean {
  // Percent-decoding yields bytes: compare the prefix as the bytes it is sent as.
  const canonicalPrefix = canonicalPath(Buffer.from(prefix).toString('latin1'))
  const prefixSegments = canonicalPrefix.split('/').slice(1)
  return function isUnderPrefix (target: string): boolean {
    const plain = comparePlain(target, canonicalPrefix)
    if (plain !== undefined) return plain
    const readings = target.charCodeAt(0) === SLASH ? [canonicalPath(target)] : [canonicalPath(target), canonicalPath(target, true)]
    return readings.some((path) => path.startsWith(canonicalPrefix) ||
      (DOUBLE_DOT_SEGMENT.test(path) && couldResolveUnder(path.split('/').slice(1), prefixSegments)))
  }
}

/**
 * For the common target, a `/path` without `%`, `\\`, `;`, `//` or `/.` (which
 * no normalization changes but for case), whether it starts with `prefix`;
 * undefined for any other target. One pass, no allocation: every request of
 * the server goes through it.
 */
function comparePlain (target: string, prefix: string): boolean | undefined {
  if (target.charCodeAt(0) !== SLASH) return undefined
  let matches = true
  let length = 0
  for (; length < target.length; length++) {
    const code = target.charCodeAt(length)
    if (code === QUESTION_MARK || code === HASH) break
    if (code === PERCENT || code === BACKSLASH || code === SEMICOLON) return undefined
    if (code === SLASH) {
      const next = target.charCodeAt(length + 1)
      if (next === SLASH || next === DOT) return undefined
    }
    // ASCII upper case to lower case; the prefix is lower case already.
    if (matches && length < prefix.length) matches = (code >= 0x41 && code <= 0x5a ? code + 0x20 : code) === prefix.charCodeAt(length)
  }
  return matches && length >= prefix.length
}

/**
 * Where a `..` leads depends on the reader: whether it resolves dot segments
 * before or after decoding (`q%2fz/..` pops one segment or two), keeps empty
 * segments (`a//..` pops none), splits at `\`. Every such reading deletes some
 * of the segments before the last `..` and keeps all after it; so the path
 * counts when the prefix's segments can be picked, in order, from those before
 * and continue with those after. The last prefix segment only has to start
 * its segment, as in the plain comparison.
 */
function couldResolveUnder (segments: string[], prefix: string[]): boolean {
  const last = segments.lastIndexOf('..')
  const deletable = segments.slice(0, last).filter((segment) => segment !== '..')
  const kept = segments.slice(last + 1)
  const matches = (segment: string, index: number): boolean =>
    index === prefix.length - 1 ? segment.startsWith(prefix[index]) : segment === prefix[index]
  // How many leading prefix segments can be picked from the deletable ones (greedy is enough for a subsequence).
  let picked = 0
  for (const segment of deletable) {
    if (picked < prefix.length && matches(segment, picked)) picked++
  }
  for (let from = 0; from <= picked; from++) {
    const rest = prefix.length - from
    if (kept.length >= rest && kept.slice(0, rest).every((segment, i) => matches(segment, from + i))) return true
  }
  return false
}
