import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { readBearerToken } from '../http/bearer.js'
import { sendError } from '../http/envelope.js'
import type { Resolution } from '../tokens/resolve-with-deadline.js'

export interface DiagnosticsAuthOptions {
  /** Routes answer without any check. Off unless the user turns it on explicitly. */
  public: boolean
  /** Lets an operator in when it returns true. */
  authorize?: (request: FastifyRequest) => boolean | Promise<boolean>
  /** Static operator tokens, compared in constant time. */
  adminTokens: string[]
  resolveToken: (token: string) => Promise<Resolution>
  retryAfterSeconds: number
}

// Digests have one length, so comparing them leaks neither content nor length.
const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * The `preHandler`s of the protected diagnostic routes. `operator` guards what
 * carries personal data or power: only an admin token or `authorize(request)`
 * gets in, and with neither configured nobody does. `user` guards
 * `connected-users`: operators, and any bearer token the token store resolves,
 * so a signed-in client may list who is connected.
 */
export function createDiagnosticsAuth (options: DiagnosticsAuthOptions) {
  const adminDigests = options.adminTokens.map(digest)

  function isAdminToken (token: string | undefined): boolean {
    if (token === undefined || adminDigests.length === 0) return false
    const presented = digest(token)
    // Every entry is compared, so the position of a match does not show in the timing.
    let allowed = false
    for (const candidate of adminDigests) allowed = timingSafeEqual(candidate, presented) || allowed
    return allowed
  }

  async function isOperator (request: FastifyRequest, token: string | undefined): Promise<boolean> {
    if (isAdminToken(token)) return true
    return options.authorize !== undefined && await options.authorize(request) === true
  }

  return {
    /** Whether anyone can reach the operator routes; false answers them 403 whatever the request. */
    admitsOperators: options.public || adminDigests.length > 0 || options.authorize !== undefined,

    operator: async function operatorAuth (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      if (options.public) return
      await strictOperator(request, reply)
    },

    /** Operators only, even with `public`: the server API acts on every user's socket. */
    strictOperator,

    user: async function userAuth (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      if (options.public) return
      const token = readBearerToken(request.headers.authorization)
      if (await isOperator(request, token)) return
      if (token === undefined) return missingBearer(request, reply)
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

  async function strictOperator (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const token = readBearerToken(request.headers.authorization)
    if (await isOperator(request, token)) return
    // A challenge only where a token would help.
    if (token === undefined && adminDigests.length > 0) return missingBearer(request, reply)
    sendError(request, reply, 403, 'Forbidden')
  }
}

function missingBearer (request: FastifyRequest, reply: FastifyReply): void {
  reply.header('www-authenticate', 'Bearer')
  sendError(request, reply, 401, 'Missing bearer token')
}
