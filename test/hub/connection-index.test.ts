import t from 'tap'
import { ConnectionIndex } from '../../lib/hub/connection-index.js'
import type { Connection } from '../../lib/hub/connection.js'

/** The part of a Connection the index uses. */
function fakeConnection (userId: string): Connection {
  let subscriptions: readonly string[] = ['settings']
  return {
    userId,
    tokenDigest: `digest-${userId}`,
    get subscriptions () { return subscriptions },
    addSubscription (channel: string) { subscriptions = [...subscriptions, channel] },
    removeSubscription (channel: string) { subscriptions = subscriptions.filter((subscribed) => subscribed !== channel) }
  } as unknown as Connection
}

t.test('global subscribers: a declared global channel by its set, the auto-subscribed one by scanning the sockets', async (t) => {
  const index = new ConnectionIndex()
  const [a, b, c] = ['a', 'b', 'c'].map(fakeConnection)
  for (const connection of [a, b, c]) index.add(connection)
  index.subscribe(a, 'prices', true)
  index.subscribe(b, 'prices', true)
  t.same(index.subscribersOf('prices'), [a, b], 'both subscribers of a declared global channel')
  index.unsubscribe(a, 'prices')
  t.same(index.subscribersOf('prices'), [b])
  t.same(index.subscribersOf('settings'), [a, b, c], 'every socket holds the auto-subscribed channel')
  index.unsubscribe(b, 'settings')
  t.same(index.subscribersOf('settings'), [a, c], 'but one that left it')
  index.subscribe(b, 'settings', true)
  t.same(index.subscribersOf('settings'), [a, b, c], 'and came back')
  index.remove(b)
  t.same(index.subscribersOf('prices'), [], 'a removed socket leaves its channels')
  t.same(index.subscribersOf('settings'), [a, c])
})
