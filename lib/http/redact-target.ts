import { createPrefixMatcher, pathEnd } from './canonical-path.js'

export const REDACTED = '[REDACTED]'

export interface RedactionPolicy {
  /** Query parameters the plugin reads itself: taken out of the URL and kept beside the request. */
  outOfBand: readonly string[]
  /** The documented query parameters of the plugin's routes that read one, by the route's full path. */
  documented: ReadonlyMap<string, readonly string[]>
}

export interface RedactedTarget {
  /** What Fastify is given as the request's URL. */
  url: string
  /** The first value of each out-of-band parameter the query carried. */
  taken: Map<string, string>
}

/** An absolute-form `scheme://host[:port]` that Fastify's router strips before routing the path after it. */
const ROUTABLE_ABSOLUTE_FORM = /^https?:\/\/[A-Za-z0-9.\-:[\]]+(?=\/)/i
const PERCENT_ESCAPE = /%([0-9a-f]{2})/gi
const UNRESERVED = /^[A-Za-z0-9\-._~]$/
/** Anything but unreserved characters and `/` may start a query some reader finds in the path (`%3F`, `;`, `\`…). */
const UNSAFE_IN_PATH = /[^A-Za-z0-9\-._~/]/
/** Inside a documented parameter's value, these could carry a second parameter to a lenient parser. */
const DELIMITER = /[&;=?#]/
const QUESTION_MARK = 0x3f

/**
 * Returns, for every target under `prefix` (see `createPrefixMatcher`), the
 * URL Fastify may see and the out-of-band parameters taken from it; for any
 * other target, undefined.
 *
 * That URL has no absolute-form `scheme://host` (Fastify's router drops it too),
 * a path redacted from where it stops being plain (see `plainPath`) and, as
 * query, only the documented parameters of the plugin route it names; none
 * for the WebSocket route and for paths that are no route.
 */
export function createTargetRedactor (prefix: string, policy: RedactionPolicy): (target: string) => RedactedTarget | undefined {
  const isUnderPrefix = createPrefixMatcher(prefix)
  const documented = new Map([...policy.documented].map(([path, names]) => [routeKey(path), names]))
  return function redact (target: string): RedactedTarget | undefined {
    if (!isUnderPrefix(target)) return undefined
    // Any other authority (user info, escapes) stays, and so is cut from the path below.
    const rest = target.replace(ROUTABLE_ABSOLUTE_FORM, '')
    const end = pathEnd(rest)
    const path = plainPath(rest.slice(0, end))
    const taken = new Map<string, string>()
    if (rest.charCodeAt(end) !== QUESTION_MARK) return { url: path, taken }
    const fragment = rest.indexOf('#', end)
    // A client that appends `?token=` to a URL that already has a query sends
    // a second `?`: read it as the separator it was meant to be.
    const query = new URLSearchParams(rest.slice(end + 1, fragment === -1 ? undefined : fragment).replaceAll('?', '&'))
    for (const name of policy.outOfBand) {
      const value = query.get(name)
      if (value !== null) taken.set(name, value)
    }
    const allowed = documented.get(routeKey(path))
    if (allowed === undefined) return { url: path, taken }
    const kept = new URLSearchParams()
    for (const [name, value] of query) {
      // Emptied rather than dropped: the route still refuses the value as invalid.
      if (allowed.includes(name)) kept.append(name, DELIMITER.test(value) ? '' : value)
    }
    const keptQuery = kept.toString()
    return { url: keptQuery === '' ? path : `${path}?${keptQuery}`, taken }
  }
}

/**
 * The path with everything from its first character that is not unreserved or
 * `/` on replaced by `[REDACTED]`, segment by segment: a token may go on past a
 * `/` (base64 has them), and keeping the depth keeps routing as it was (a
 * parametric route of the app matches no more than before, a 404 stays one).
 * Escapes of unreserved characters are decoded first, as Fastify's router
 * decodes them, so they change no route either.
 */
function plainPath (raw: string): string {
  const decoded = raw.replace(PERCENT_ESCAPE, (escape, hex: string) => {
    const character = String.fromCharCode(parseInt(hex, 16))
    return UNRESERVED.test(character) ? character : escape
  })
  const unsafe = decoded.search(UNSAFE_IN_PATH)
  if (unsafe === -1) return decoded
  const later = decoded.slice(unsafe).split('/').slice(1).map((segment) => segment === '' ? '' : REDACTED)
  return [decoded.slice(0, unsafe) + REDACTED, ...later].join('/')
}

/** A route path as the documented-parameter lookup compares it: lower-case, without a trailing slash. */
function routeKey (path: string): string {
  const lowered = path.toLowerCase()
  return lowered.length > 1 && lowered.endsWith('/') ? lowered.slice(0, -1) : lowered
}
