import t from 'tap'
import { canonicalPath, createPrefixMatcher } from '../../lib/http/canonical-path.js'

t.test('createPrefixMatcher counts every target some reader could route under the prefix', async (t) => {
  const isUnder = createPrefixMatcher('/api/v1/ws')
  for (const target of [
    '/api/v1/ws', '/API/V1/WS?x', '/api/v1/wsx', '/api/v1/ws/connections', 'api/v1/ws', '//api//v1/ws', '/./api/v1/ws',
    '/x/../api/v1/ws', '/x/..%2fapi/v1/ws', '/q%2fz/../api/v1/ws', '/api/v1/ws/../../x', '/..;/api/v1/ws', '/../api/v1/ws',
    '/api/x/../v1/ws', '/api/v1/x/../wsx', '/a/api/b/v1/c/../../../ws', '/api/v1/ws/a/../b',
    '/api/../v1/ws', // no reader pops nothing here, but counting it costs only its query
    'HTTP://example.test:80%2Fapi/v1/ws', 'http://h%3F/api/v1/ws', 'http://user:secret@h/api/v1/ws', 'http%3A%2F%2Fh%2Fapi/v1/ws',
    'http://host:1/api/v1/ws?token=t', 'HTTPS://host/api/v1/ws', 'http:/host/api/v1/ws', 'http:\\\\host\\api/v1/ws', 'host:80/api/v1/ws',
    '/api/v1/%77s', '/api/v1/%2577s', '/api/v1/%252577s', '/%2Fapi/v1/ws', '/%2fapi%2fv1%2fws', '/\\api/v1/ws', '/%5Capi/v1/ws',
    '/api;v=1/v1/ws', '/api/v1/ws%3Ftoken=t', '/api/v1/ws%zz', '/api/v1/ws#x'
  ]) {
    t.equal(isUnder(target), true, target)
  }
  for (const target of [
    '/', '*', '/api/v1', '/api/v1/w', '/api/v1/w?s', '/api/v1/w%3Fs', '/api/v1/w#s', 'http://host', 'http://host/x?/api/v1/ws',
    '/other/api/v1/ws', '/other/./api/v1/ws', '/api/v2/ws', '/api/v1/%2525252577s',
    '/x/../docs/api/v1/ws', '/api/v1/x/../y', '/ws/../api/v1'
  ]) {
    t.equal(isUnder(target), false, target)
  }
})

t.test('a prefix with upper-case or non-ASCII characters is compared as it is sent', async (t) => {
  const isUnder = createPrefixMatcher('/Échos/WS')
  t.equal(isUnder('/%C3%89chos/ws?token=t'), true)
  t.equal(isUnder('/%c3%89CHOS/WS'), true)
  t.equal(isUnder('/echos/ws'), false)
})

t.test('canonicalPath applies every lenient reading at once', async (t) => {
  t.equal(canonicalPath('HTTP://h/A%252F%5cB;x=1//./C%3Fd?e'), '/a/b/c')
  t.equal(canonicalPath('/a/%2e%2e/b'), '/a/../b', '.. segments are kept')
  t.equal(canonicalPath('/a%zz'), '/a%zz', 'a malformed escape stays')
})
