import t from 'tap'
import { startApp } from '../helpers/app.js'
import { waitFor } from '../helpers/cluster.js'
import { within } from '../helpers/outage.js'
import { openPhone } from '../helpers/phone.js'

t.test('a socket that goes away while its refresh token is resolved is sent nothing', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let asked = false
  let answered = false
  const expiresAt = Math.floor(Date.now() / 1000) + 600
  // The handshake's token resolves at once; the refresh's waits for the test.
  const resolver = async (token: string): Promise<{ userId: string, expiresAt: number } | null> => {
    if (token !== 'refresh-late') return token === 'user-u1' ? { userId: 'u1', expiresAt } : null
    asked = true
    await gate
    answered = true
    return { userId: 'u1', expiresAt }
  }
  const node = await startApp({ tokens: { resolver } })
  t.teardown(async () => await node.app.close())
  const phone = await openPhone(`${node.wsBase}/api/v1/ws?token=user-u1`)
  t.teardown(() => phone.socket.terminate())
  phone.send({ event: 'refresh', token: 'refresh-late' })
  await within(waitFor(() => asked), 5000, 'the refresh to be resolving')
  phone.socket.terminate()
  await within(waitFor(() => node.app.realtime.connections().length === 0), 5000, 'the socket to be gone')
  const { dropped, messages_out: messagesOut } = node.app.realtime.stats()
  release()
  await within(waitFor(() => answered), 5000, 'the resolver to answer')
  await new Promise((resolve) => setImmediate(resolve))
  t.strictSame([node.app.realtime.stats().dropped, node.app.realtime.stats().messages_out], [dropped, messagesOut], 'no refreshed, nothing written or dropped')
  t.strictSame(phone.inbox.messages.map((message) => message.event), ['connected'])
})
