import t from 'tap'
import { createOriginCheck } from '../../lib/handshake/origin.js'

t.test('exact entries match whole origins only, ignoring case and a trailing slash', async (t) => {
  const allowed = createOriginCheck({ allowedOrigins: ['https://app.example.com'], allowMissingOrigin: true })
  t.equal(allowed('https://app.example.com'), true)
  t.equal(allowed('HTTPS://APP.EXAMPLE.COM/'), true)
  t.equal(allowed('https://app.example.com.evil.test'), false)
  t.equal(allowed('https://evil-app.example.com'), false)
  t.equal(allowed('http://app.example.com'), false)
  t.equal(allowed('https://app.example.com:8443'), false)
  t.equal(allowed('null'), false)
  t.equal(allowed(undefined), true)
  t.equal(allowed(''), true)
})

t.test("'*' allows any real origin but not the opaque origin null", async (t) => {
  const allowed = createOriginCheck({ allowedOrigins: ['*'], allowMissingOrigin: false })
  t.equal(allowed('https://anything.test'), true)
  t.equal(allowed('null'), false)
  t.equal(allowed(undefined), false)
})

t.test('RegExp entries must match the whole origin', async (t) => {
  const allowed = createOriginCheck({ allowedOrigins: [/https:\/\/[a-z]+\.example\.com/g], allowMissingOrigin: true })
  t.equal(allowed('https://app.example.com'), true)
  t.equal(allowed('https://app.example.com'), true, 'a /g pattern gives the same answer twice')
  t.equal(allowed('https://app.example.com.evil.test'), false)
  t.equal(allowed('xhttps://app.example.com'), false)
})

t.test('no entries: only native clients without Origin get in', async (t) => {
  const allowed = createOriginCheck({ allowedOrigins: [], allowMissingOrigin: true })
  t.equal(allowed('https://app.example.com'), false)
  t.equal(allowed(undefined), true)
})
