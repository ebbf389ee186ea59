import t from 'tap'
import { createHash } from 'node:crypto'
import { digestOfHash, hashOfDigest, hashToken, tokenDigest } from '../../lib/tokens/token-store.js'

t.test('a token\'s digest is its SHA-256 in 32 one-byte characters, and turns into the hex hash and back', async (t) => {
  const token = 'tok_' + 'x'.repeat(43)
  const digest = tokenDigest(token)
  t.equal(digest.length, 32)
  t.ok([...digest].every((character) => character.charCodeAt(0) < 256), 'one byte per character')
  t.same(Buffer.from(digest, 'latin1'), createHash('sha256').update(token).digest())
  t.equal(hashOfDigest(digest), hashToken(token))
  t.equal(digestOfHash(hashToken(token)), digest)
  t.not(tokenDigest(token + 'y'), digest)
})
