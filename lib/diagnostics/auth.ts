import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { readBearerToken } from '../http/bearer.js'
import { sendError } from '../http/envelope.js'
import type { Resolution } from '../tokens/resolve-with-deadline.js'

export interface DiagnosticsAuthOptions {
  /** Routes answer without any check. Off unless the user turns it on explicitly. */
  public: boolean
  /** Lets an operator in when it returns true, or a non-empty string: the operator's name in the action log. */
  authorize?: (request: FastifyRequest) => boolean | string | Promise<boolean | string>
  /** Static operator tokens, compared in constant time. */
  adminTokens: string[]
  resolveToken: (token: string) => Promise<Resolution>
  retryAfterSeconds: number
}

// Digests have one length, so comparing them leaks neither content nor length.
const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/** Who an operator request came from, for the action log (never the credential itself); null until an operator check lets it in. */
export const kOperator = Symbol('fastify-realtime.operator')

declare module 'fastify' {
  interface FastifyRequest {
    [kOperator]: string | null
  }
}

/**
 * An admin token's name in the action log: a digest prefix tells operators
 * apart and matches the token they hold (`sha256sum`), yet gives nothing
 * usable away; 32 bits are far from enough to search a 16+ character token.
 */
const adminTokenName = (tokenDigest: Buffer): string => `admin-token:${tokenDigest.toString('hex').slice(0, 8)}`

/**
 * The `preHandler`s of the protected diagnostic routes. `operator` guards what
 * carries personal data or power: only an admin token or `authorize(request)`
 * gets in, and with neither configured nobody does. `user` guards
 * `connected-users`: operators, and any bearer token the token store resolves,
 * so a signed-in client may list who is connected.
 */
export function createDiagnosticsAuth (options: DiagnosticsAuthOptions) {
  const adminDigests = options.adminTokens.map(digest)

  /** The admin token's name when `token` is one. */
  function adminToken (token: string | undefined): string | undefined {
    if (token === undefined || adminDigests.length === 0) return undefined
    const presented = digest(token)
    // Every entry is compared, so the position of a match does not show in the timing.
    let allowed = false
    for (const candidate of adminDigests) allowed = timingSafeEqual(candidate, presented) || allowed
    return allowed ? adminTokenName(presented) : undefined
  }

  /** The operator's name when the request carries an operator credential. */
  async function operatorName (request: FastifyRequest, token: string | undefined): Promise<string | undefined> {
    const admin = adminToken(token)
    if (admin !== undefined) return admin
    if (options.authorize === undefined) return undefined
    const verdict = await options.authorize(request)
    if (verdict === true) return 'authorize'
    return typeof verdict === 'string' && verdict !== '' ? `authorize:${verdict}` : undefined
  }

  async function isOperator (request: FastifyRequest, token: string | undefined): Promise<boolean> {
    const name = await operatorName(request, token)
    if (name === undefined) return false
    request[kOperator] = name
    return true
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
