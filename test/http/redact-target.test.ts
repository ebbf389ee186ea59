import t from 'tap'
import { createTargetRedactor } from '../../lib/http/redact-target.js'

const redact = createTargetRedactor('/api/v1/ws', {
  outOfBand: ['token', 'recover'],
  documented: new Map([['/api/v1/ws/connections', ['limit', 'user_id']]])
})
const url = (target: string): string | undefined => redact(target)?.url

t.test('targets outside the prefix are not redacted', async (t) => {
  t.equal(redact('/elsewhere?token=t'), undefined)
})

t.test('out-of-band parameters are taken: the first value of the exact (decoded) name', async (t) => {
  t.same(redact('/api/v1/ws?token=a&token=b&recover=x@1'), { url: '/api/v1/ws', taken: new Map([['token', 'a'], ['recover', 'x@1']]) })
  t.same(redact('/api/v1/ws?v=2?%74oken=a')?.taken, new Map([['token', 'a']]), 'a second ? is read as &')
  t.same(redact('/api/v1/ws?TOKEN=a&token[]=b&c=1;token=d')?.taken, new Map(), 'other names are not read')
  t.same(redact('/api/v1/ws%3Ftoken=a')?.taken, new Map(), 'nor a token in the path')
})

t.test('the path keeps its plain part and its depth', async (t) => {
  t.equal(url('/api/v1/w%73/%7Ex'), '/api/v1/ws/~x', 'escapes of unreserved characters are decoded')
  t.equal(url('/api/v1/ws%3Fa/b//c'), '/api/v1/ws[REDACTED]/[REDACTED]//[REDACTED]')
  t.equal(url('/api/v1/ws/../x/./y'), '/api/v1/ws/../x/./y', 'dot segments are plain')
  t.equal(url('%2Fapi/v1/ws'), '[REDACTED]/[REDACTED]/[REDACTED]', 'a target Fastify refuses as a bad URL stays one')
})

t.test('an absolute-form target loses its scheme and host when Fastify would route its path', async (t) => {
  t.equal(url('HTTP://127.0.0.1:80/api/v1/ws?token=t'), '/api/v1/ws')
  t.equal(url('http://user:t@host/api/v1/ws'), 'http[REDACTED]//[REDACTED]/[REDACTED]/[REDACTED]/[REDACTED]', 'user info is cut with the rest')
})

t.test('a documented route keeps its documented parameters, and only plain values', async (t) => {
  t.equal(url('/api/v1/ws/connections?token=t&limit=5&cursor=c&user_id=a%20b'), '/api/v1/ws/connections?limit=5&user_id=a+b')
  t.equal(url('/API/v1/ws/Connections/?limit=5'), '/API/v1/ws/Connections/?limit=5', 'compared as Fastify might: any case, a trailing slash')
  t.equal(url('/api/v1/ws/connections?limit=1;token=t&user_id=a%3Db'), '/api/v1/ws/connections?limit=&user_id=', 'a value that could carry more is emptied')
  t.equal(url('/api/v1/ws/connections?limit=1#token=t'), '/api/v1/ws/connections?limit=1', 'the fragment goes')
  t.equal(url('/api/v1/ws/connections?token=t'), '/api/v1/ws/connections', 'no documented parameter, no query')
  t.equal(url('/api/v1/ws/connections%3Flimit=1'), '/api/v1/ws/connections[REDACTED]', 'a redacted path is no documented route')
})
