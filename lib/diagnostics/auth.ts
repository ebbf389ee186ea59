import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { readBearerToken } from '../http/bearer.js'
import { sendError } from '../http/envelope.js'
import type { Resolution } from '../tokens/resolve-with-deadline.js'

export interface DiagnosticsAuthOptions {
  /** Routes answer without any check. Off unless the user turns it on explicitly. */
  public: boolean
  /** Decides alone when given: true lets the request in, false answers 403. */
  authorize?: (request: FastifyRequest) => boolean | Promise<boolean>
  /** Static operator tokens, compared in constant time; replace the default token check. */
  adminTokens: string[]
  resolveToken: (token: string) => Promise<Resolution>
  retryAfterSeconds: number
}

// Digests have one length, so comparing them leaks neither content nor length.
const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * The `preHandler` of the protected diagnostic routes. By default any bearer
 * token the token store resolves gets in (as in the seed); `adminTokens` or an
 * `authorize(request)` function narrow that to operators.
 */
export function createDiagnosticsAuth (options: DiagnosticsAuthOptions) {
  const adminDigests = options.adminTokens.map(digest)

  return async function diagnosticsAuth (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (options.public) return
    if (options.authorize !== undefined) {
      if (await options.authorize(request) !== true) sendError(request, reply, 403, 'Forbidden')
      return
    }
    const token = readBearerToken(request.headers.authorization)
    if (token === undefined) {
      reply.header('www-authenticate', 'Bearer')
      sendError(request, reply, 401, 'Missing bearer token')
      return
    }
    if (adminDigests.length > 0) {
      const presented = digest(token)
      // Every entry is compared, so the position of a match does not show in the timing.
      let allowed = false
      for (const candidate of adminDigests) allowed = timingSafeEqual(candidate, presented) || allowed
      if (!allowed) sendError(request, reply, 403, 'Forbidden')
      return
    }
    const resolution = await options.resolveToken(token)
    if (resolution.outcome === 'valid') return
    if (resolution.outcome === 'invalid') {
      sendError(request, reply, 401, 'Invalid or expired token')
      return
    }
    reply.header('retry-after', String(options.retryAfterSeconds))
    sendError(request, reply, 503, 'Token store unavailable')
  }
}
