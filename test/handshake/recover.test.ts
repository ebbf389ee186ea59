import t from 'tap'
import { startApp } from '../helpers/app.js'
import { connect, handshake } from '../helpers/client.js'
import { Inbox } from '../helpers/messages.js'

const HISTORY_OFF = { recovered: false, reason: 'history_off' }

t.test('without history, every channel listed in recover is subscribed and answered recovered: false, history_off', async (t) => {
  const { app, wsBase, logs } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('phone', { ttlSeconds: 60 })
  const recover = 'settings@0-1,kyc.events@1700000000:42,mobile.force.logout@a_b-c'
  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}&recover=${encodeURIComponent(recover)}`)
  t.teardown(() => socket.terminate())
  const inbox = new Inbox(socket)
  t.equal(first.event, 'connected')
  const data = first.data as Record<string, unknown>
  t.strictSame(data.subscriptions, ['settings', 'kyc.events', 'mobile.force.logout'])
  t.strictSame(data.recovery, { settings: HISTORY_OFF, 'kyc.events': HISTORY_OFF, 'mobile.force.logout': HISTORY_OFF })
  await app.realtime.publish('kyc.events', 'KYC_APPROVED', { level: 2 }, { userId: 'phone' })
  t.strictSame(await inbox.until(1), [{ event: 'KYC_APPROVED', channel: 'kyc.events', data: { level: 2 } }], 'live events follow on a recovered channel')
  t.notOk(logs.some((line) => line.includes('recover=') || line.includes('1700000000:42')), 'the positions stay out of the logged URL')

  const plain = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('plain', { ttlSeconds: 60 })}`)
  t.teardown(() => plain.socket.terminate())
  t.notOk('recovery' in (plain.first.data as Record<string, unknown>), 'no recover, no recovery')
})

t.test('a malformed recover, an unknown channel or too many channels is refused before the upgrade with 400', async (t) => {
  const { app, wsBase } = await startApp({ limits: { maxSubscriptions: 3 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('phone', { ttlSeconds: 60 })
  const malformed = ['', 'kyc.events', 'kyc.events@', '@1', 'kyc.events@bad id', 'kyc.events@1,kyc.events@2', 'kyc.events@1,', 'nope.events@1']
  for (const value of malformed) {
    const result = await handshake(`${wsBase}/api/v1/ws?token=${token}&recover=${encodeURIComponent(value)}`)
    t.equal(result.kind, 'rejected', JSON.stringify(value))
    if (result.kind !== 'rejected') continue
    t.equal(result.status, 400)
    t.equal(result.body.message, 'Invalid recover parameter: expected <channel>@<id>,… of known channels')
  }
  // settings is auto-subscribed: with it, three user channels are four subscriptions.
  const tooMany = await handshake(`${wsBase}/api/v1/ws?token=${token}&recover=kyc.events@1,card.events@1,payment_order.events@1`)
  t.equal(tooMany.kind, 'rejected')
  if (tooMany.kind === 'rejected') t.same([tooMany.status, tooMany.body.message], [400, 'Too many channels to recover'])
  const fits = await connect(`${wsBase}/api/v1/ws?token=${token}&recover=settings@1,kyc.events@1,card.events@1`)
  t.teardown(() => fits.socket.terminate())
  t.strictSame((fits.first.data as { subscriptions: string[] }).subscriptions, ['settings', 'kyc.events', 'card.events'])
  t.same(app.realtime.stats().connects, 1, 'no refused handshake was upgraded')
})

t.test('subscribe with since answers recovered: false, history_off; a since that is not a string is an invalid message', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const { socket } = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('phone', { ttlSeconds: 60 })}`)
  t.teardown(() => socket.terminate())
  const inbox = new Inbox(socket)
  socket.send(JSON.stringify({ event: 'subscribe', channel: 'payment_order.events', since: '1700000000:7' }))
  socket.send(JSON.stringify({ event: 'subscribe', channel: 'card.events', since: 7 }))
  socket.send(JSON.stringify({ event: 'subscribe', channel: 'card.events' }))
  const [recovering, invalid, plain] = await inbox.until(3)
  t.strictSame(recovering, { event: 'subscribed', channel: 'payment_order.events', data: { subscriptions: ['settings', 'payment_order.events'], ...HISTORY_OFF } })
  t.equal(invalid.event, 'error')
  t.equal(invalid.data.code, 'INVALID_MESSAGE')
  t.strictSame(plain, { event: 'subscribed', channel: 'card.events', data: { subscriptions: ['settings', 'payment_order.events', 'card.events'] } })
})
